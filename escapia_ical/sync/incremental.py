"""Incremental sync for HSAPI accounts: follow the change feed, fetch only what changed.

Each tick asks ``GetReservationChanges`` what happened since the last version seen (one
request when nothing did), maps changed reservations to their units with
``GetReservationById`` (which also answers for cancelled ones), and fetches only those
units, plus units whose loss of nights is held by the publish policy (to confirm or release
it). A reconcile still fetches every unit once per ``reconcile_hours``, spread over the
ticks (each unit has a slot), so no tick fetches everything and a change the feed missed is
corrected within that period. Unit discovery happens at the same pace.

The change feed is also *evidence* for the publish policy: a reservation now cancelled,
moved away or shortened explains the nights its unit's calendar frees (``Plan.freed``).

The feed is read from one version *before* the cursor, so that the change at the cursor
comes back every time (and is skipped, by its id, type and time): an answer without that
reservation means Escapia no longer has that version — its versions were reset, or the
state came from elsewhere — and the run falls back to a full sync instead of trusting a
cursor Escapia will never reach (or reached with other changes). A page that ends at the
cursor holds everything only if the feed is known to put several changes in a page.

Work orders block units without ever appearing in the feed: each tick also looks at the
open ones (one SearchWorkOrders page, :mod:`.work_orders`), fetches the units of new,
changed or closed ones, and counts confirmed closings as evidence. Without the grant
(HTTP 403) the reconcile comes round every ``work_orders_fallback_hours`` instead of every
``reconcile_hours``: a full-window GetUnitNonAvailability per unit, the same single
request a near-term one would cost, so nothing beyond the near term goes stale.

Full mode follows the feed too: every unit is fetched every run, and the feed tells the
publish policy which stays were cancelled, moved or shortened.

The reservations the tracker remembers are also the *kind index* (:mod:`.kind_index`):
each tick's lookups record the kinds of the stays they find, for free; with
``kinds_wanted`` one account-wide SearchReservationSummaries refreshes the index once per
``reconcile_hours``. ``Plan.claims`` (unit -> kind -> nights, work orders included) labels
the nights non-availability blocks.

State (``state_dir/accounts/<account>/changes.json``), each part checked when read (a part
of the wrong shape is reported and ignored; the next save rewrites it):
  cursor        the change-feed version to ask from; absent -> a full sync
  at_cursor     the change read last (id, type, time): the one at the cursor
  pages_of_many whether a page of the feed ever held more than one change
  units         the distributed units and when they were listed
  reservations  reservation id -> [unit, first night, departure, kind] (the stay may be
                unknown; stays that ended before the feed window are forgotten). Entries
                written before kinds ([unit, first night, departure]) read as reservations
                and make the index count as never refreshed
  fetched       unit id -> when it was last fetched successfully
  pending       units whose fetch is owed (it failed, or the run deadline came first)
  work_orders   work order id -> [unit, removes, start, end, status], the open ones (absent: never read)
  work_orders_forbidden  whether SearchWorkOrders answered 403 at the last tick
  kinds_refreshed_at  when the account-wide refresh of the kinds last succeeded (absent: never)
  kinds_missed  stays with nights to come the last refresh did not list (the next one decides)
  kinds_owed    a refresh due for a reason of its own (full sync, new unit) failed: owed
  kinds_failed_at  when the last refresh failed (the next try waits an hour)
The cursor and the rest are saved only after the run's feeds were handled: a crash means
the same changes are read again, never lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

from escapia_ical.config import FeedSettings, HsapiAccount
from escapia_ical.errors import DeadlineReached
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.sources.hsapi import CursorRejected, HsapiSource
from escapia_ical.sources.hsapi_decode import Change, Reservation
from escapia_ical.state import AccountState, read_state, write_state
from escapia_ical.sync.change_state import Stay, checked, to_json
from escapia_ical.sync.kind_index import (
    MAX_REMEMBERED_RESERVATIONS,
    Claims,
    KindTick,
    claims_of,
    update_index,
)
from escapia_ical.sync.work_orders import WorkOrderTick, watch_work_orders

log = logging.getLogger(__name__)

TICK = dt.timedelta(minutes=5)  # the cron interval the reconcile is spread over


@dataclass
class Plan:
    """What one tick of one account fetches, and the state to keep once it is done."""

    units: list[Unit]
    fetch: set[str]
    cursor: int
    reasons: dict[str, int] = field(default_factory=dict)  # why units are fetched, for -v
    reservations: dict[str, Stay] = field(default_factory=dict)
    listed_at: str = ""
    owed: set[str] = field(default_factory=set)  # changed units not listed: fetched once they are
    freed: dict[str, list[Span]] = field(default_factory=dict)  # unit -> nights the feed shows freed
    at_cursor: list[Change] = field(default_factory=list)
    work_orders: WorkOrderTick = field(default_factory=lambda: WorkOrderTick(None))
    kinds: KindTick = field(default_factory=KindTick)  # what to remember of the kinds refreshes
    claims: Claims = field(default_factory=dict)  # unit -> kind -> nights booked (tracked units)


class ChangeTracker:
    """Plans and records the incremental sync of one HSAPI account."""

    def __init__(self, account: HsapiAccount, state: AccountState):
        self.account = account
        self.path = state.folder / "changes.json"
        self.data = checked(read_state(self.path), self.path)
        self.period = dt.timedelta(hours=account.reconcile_hours)
        self.fallback = dt.timedelta(hours=min(account.work_orders_fallback_hours, account.reconcile_hours))
        self._pages_of_many = False

    def plan(self, source: HsapiSource, now: dt.datetime, *, full: bool = False,
             deadline: float = math.inf, held: set[str] = frozenset(),
             window: FeedWindow | None = None) -> Plan:
        """Return this tick's plan. ``full`` fetches every unit (and keeps the cursor going);
        ``held`` units (a loss held by the publish policy) are fetched too; ``window`` (the
        feed window; the default settings' if None) bounds the kind index and the claims.
        Raise DeadlineReached if reading the change feed (or the kinds refresh) outlasts
        ``deadline``."""
        window = window or FeedWindow.around(now.date(), FeedSettings.past_days, FeedSettings.future_days)
        try:
            plan = self._plan(source, now, full, deadline, held, window)
        finally:  # what the feed showed of its pages, whatever happened
            self._pages_of_many = source.largest_change_page > 1
        # Unclipped: a stay crossing the window's start labels its whole block (stable UIDs).
        plan.claims = claims_of(plan.reservations, plan.work_orders.orders, self._tracked(plan.units))
        return plan

    def _plan(self, source: HsapiSource, now: dt.datetime, full: bool, deadline: float,
              held: set[str], window: FeedWindow) -> Plan:
        units, listed_at = self._units(source, now, rediscover=full)
        orders = watch_work_orders(source, self.account, self.data["work_orders"], now.date(), deadline)
        cursor = self.data["cursor"]
        changes: list[Change] = []
        if cursor is not None:
            try:
                changes, new_cursor = self._read_from(source, cursor, deadline)
            except CursorRejected as exc:
                log.warning("%s: %s; fetching every unit", self.account.name, exc)
                cursor = None
        ids = self._tracked(units)
        # The change at the cursor, read again, is skipped only when nothing followed it: if the
        # feed went on, it may be the same reservation changed again within the same second.
        fresh = _unseen(changes, self.data["at_cursor"]) if cursor is not None and new_cursor == cursor \
            else changes
        changed = {c.reservation for c in fresh}
        many = len(changed) > len(ids)  # cheaper to fetch every unit than to look each one up
        last = KindTick(self.data["kinds_refreshed_at"], self.data["kinds_missed"], self.data["kinds_owed"],
                        self.data["kinds_failed_at"])
        gained = ids - {u.id for u in self.data["units"]}  # their stays were not kept by the last refresh
        reservations, kinds = update_index(source, self.account, self.data["reservations"], last, tracked=ids,
                                           named=set() if many else changed, now=now, window=window,
                                           deadline=deadline, full_sync=cursor is None or bool(gained))
        if cursor is None:  # first run, lost state or rejected cursor: fetch everything, and
            # follow the feed from now on (skipping the history: those units are all fetched)
            # From one version before the one found, so the change there is remembered and
            # the next tick, which reads it again, knows it.
            read, new_cursor = source.changes_since(max(source.recent_version(deadline) - 1, 0), deadline)
            return Plan(units, ids, new_cursor, {"full": len(ids)}, reservations, listed_at,
                        at_cursor=read[-1:], work_orders=orders, kinds=kinds)
        remembered = changes[-1:] or self.data["at_cursor"]
        if many:
            return Plan(units, ids, new_cursor, {"many changes": len(ids)}, reservations, listed_at,
                        at_cursor=remembered, work_orders=orders, kinds=kinds)
        touched, freed = self._changed_units(source, changed, reservations, deadline)
        touched |= orders.touched
        for unit in freed:  # a night an open work order may block is not freed by a stay's change
            freed[unit] = spans.subtract(freed[unit], [b for w in (orders.orders or {}).values()
                                                       if w.unit == unit for b in [w.blocks()] if b])
        if touched - {u.id for u in units} and listed_at != now.isoformat():
            # A change for a unit the cached list lacks: the list is stale (a new unit, or a
            # listing that missed one). List again now rather than lose the change for hours.
            units, listed_at = source.list_units(), now.isoformat()
            ids = self._tracked(units)
        unlisted = touched - {u.id for u in units}
        if unlisted:  # still missing: owe them, and list again at the next run
            log.warning("%s: changes for unit(s) Escapia does not list: %s; listing again next run",
                        self.account.name, ", ".join(sorted(unlisted)[:5]))
            listed_at = ""
        reasons: dict[str, int] = {}
        fetch = add_units(set(), reasons, "changed", (touched - orders.touched) & ids)
        add_units(fetch, reasons, "work orders", orders.touched & ids)
        if full:
            add_units(fetch, reasons, "full", ids)
        pending = set(self.data["pending"])
        add_units(fetch, reasons, "pending", pending & ids)
        add_units(fetch, reasons, "held", set(held) & ids)
        unlisted |= pending - {u.id for u in units}  # owed, still not listed: keep owing
        fetched = self.data["fetched"]
        add_units(fetch, reasons, "new", {u for u in ids if u not in fetched})
        period = self.fallback if orders.forbidden else self.period
        times: dict[str, dt.datetime | None] = {}  # a few distinct fetch times: each read once
        add_units(fetch, reasons, "reconcile",
                  {u for u in ids if self._due(u, fetched.get(u), now, period, times)})
        return Plan(units, fetch, new_cursor, reasons, reservations, listed_at, owed=unlisted, freed=freed,
                    at_cursor=remembered, work_orders=orders, kinds=kinds)

    def commit(self, plan: Plan, succeeded: set[str], now: dt.datetime) -> None:
        """Save the cursor and what was fetched; owe the units whose fetch did not succeed."""
        ids = self._tracked(plan.units)
        # One mapping (not a copy, then the tracked part of it) and one time string for every
        # unit fetched now (a string each was 4 MB of a cold sync's peak at 50,000 units).
        at = now.isoformat()
        fetched = {u: t for u, t in self.data["fetched"].items() if u in ids}
        fetched.update((u, at) for u in succeeded if u in ids)
        reservations = dict(list(plan.reservations.items())[-MAX_REMEMBERED_RESERVATIONS:])
        self.data = {
            "cursor": plan.cursor,
            "at_cursor": plan.at_cursor,
            "pages_of_many": self.data["pages_of_many"] or self._pages_of_many,
            "units": plan.units,
            "listed_at": plan.listed_at,
            "reservations": reservations,
            "fetched": fetched,
            "pending": sorted(((plan.fetch - succeeded) & ids) | plan.owed),
            "work_orders": plan.work_orders.orders if plan.work_orders.orders is not None
            else self.data["work_orders"],
            "work_orders_forbidden": plan.work_orders.forbidden,
            "kinds_refreshed_at": plan.kinds.refreshed_at,
            "kinds_missed": plan.kinds.missed,
            "kinds_owed": plan.kinds.owed,
            "kinds_failed_at": plan.kinds.failed_at,
        }
        write_state(self.path, to_json(self.data))

    # -- the parts of a plan ----------------------------------------------------------

    def _read_from(self, source: HsapiSource, cursor: int, deadline: float) -> tuple[list[Change], int]:
        """Read the feed from one version before ``cursor`` (see the module docstring); raise
        CursorRejected if the change at the cursor does not come back."""
        if cursor <= 0:
            return source.changes_since(cursor, deadline)
        known_end = cursor if self.data["pages_of_many"] else None
        changes, end = source.changes_since(cursor - 1, deadline, known_end=known_end)
        last = {c.reservation for c in self.data["at_cursor"]}
        if not changes or end < cursor or (last and not last & {c.reservation for c in changes}):
            raise CursorRejected(f"the change feed has no longer the change at version {cursor} "
                                 "(were Escapia's versions reset?)")
        return changes, end

    def _units(self, source: HsapiSource, now: dt.datetime, *, rediscover: bool) -> tuple[list[Unit], str]:
        """Return the distributed units: from state, or rediscovered once per period."""
        cached, listed_at = self.data["units"], self.data["listed_at"]
        try:
            fresh = now - dt.datetime.fromisoformat(listed_at) < self.period
        except (TypeError, ValueError):
            fresh = False
        if cached and fresh and not rediscover:
            return cached, listed_at
        return source.list_units(), now.isoformat()

    def _tracked(self, units: list[Unit]) -> set[str]:
        """Return the ids of the listed units this account publishes (``units:`` may list)."""
        wanted = self.account.units
        return {u.id for u in units if wanted == "all" or u.id in wanted}

    def _changed_units(self, source: HsapiSource, changed: set[str], reservations: dict[str, Stay],
                       deadline: float) -> tuple[set[str], dict[str, list[Span]]]:
        """Return the units touched by the changed reservations (where they are now, and
        where they were at the last tick, for a stay moved between units) and the nights
        each change freed; remember where each reservation is now, and its kind."""
        units: set[str] = set()
        freed: dict[str, list[Span]] = {}
        for reservation_id in sorted(changed):
            if time.monotonic() > deadline:
                raise DeadlineReached("the run deadline passed while mapping changes to units; "
                                      "they are read again at the next run")
            # Before: as the last tick left it (a kinds refresh this tick may have updated it already).
            now_in, before = source.reservation(reservation_id), self.data["reservations"].get(reservation_id)
            reservations.pop(reservation_id, None)
            units |= {u for u in (now_in.unit if now_in else None, before[0] if before else None) if u}
            for unit, nights in _freed(before, now_in):
                freed[unit] = spans.union(freed.get(unit, []), nights)
            if now_in and now_in.unit and not now_in.cancelled:
                reservations[reservation_id] = (now_in.unit, now_in.start, now_in.end, now_in.kind)
            elif now_in is None and before is None:
                log.info("%s: change to unknown reservation %s ignored (the reconcile covers it)",
                         self.account.name, reservation_id)
        # A night another known stay of the unit books is not freed by this change (the
        # stays read once for every freed unit: a scan per unit was units x reservations).
        booked: dict[str, list[spans.Span]] = {}
        for u, s, e, _ in reservations.values() if freed else ():
            if u in freed and s and e:
                booked.setdefault(u, []).append((s, e))
        for unit in freed:
            freed[unit] = spans.subtract(freed[unit], booked.get(unit, []))
        return units, freed

    def _due(self, unit_id: str, last: str | None, now: dt.datetime, period: dt.timedelta,
             times: dict[str, dt.datetime | None]) -> bool:
        """Is the unit's reconcile due? At its slot of the period if its last fetch is at
        least half a period old (so a tick just after a full sync fetches nothing), and
        always once it is a whole period old (missed ticks). ``times``: the times read so
        far (units fetched by the same run share theirs)."""
        if not isinstance(last, str):
            return True
        if last not in times:
            try:
                times[last] = dt.datetime.fromisoformat(last)
            except ValueError:
                times[last] = None
        when = times[last]
        try:
            age = now - when  # type: ignore[operator]
        except TypeError:  # unreadable, or without a zone
            return True
        if age >= period:
            return True
        if age < period / 2:
            return False
        slots = max(1, round(period / TICK))
        slot = int(hashlib.sha256(unit_id.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % slots
        return slot == int(now.timestamp() // TICK.total_seconds()) % slots



def add_units(fetch: set[str], reasons: dict[str, int], reason: str, units: set[str]) -> set[str]:
    """Add ``units`` to ``fetch``, counting under ``reason`` those not in it yet; return it."""
    new = units - fetch
    if new:
        reasons[reason] = reasons.get(reason, 0) + len(new)
    fetch |= new
    return fetch


def _unseen(changes: list[Change], seen: list[Change]) -> list[Change]:
    """Return the changes without the one read last time (the one at the cursor), once.
    Only a change with a time can be recognised: one without is taken as new (one lookup
    too many, never a change missed)."""
    known = [c for c in seen if c.time]
    fresh = []
    for change in changes:
        if change in known:
            known.remove(change)
        else:
            fresh.append(change)
    return fresh


def _freed(before: Stay | None, now: Reservation | None) -> list[tuple[str, list[Span]]]:
    """Return the (unit, nights) a change shows freed: the whole stay of a cancelled
    reservation, the old stay of one moved to another unit, the nights it no longer covers
    when its dates changed. A reservation Escapia no longer finds (404) shows nothing."""
    if now is None:
        return []
    freed = []
    if now.cancelled and now.unit and now.start and now.end:
        freed.append((now.unit, [(now.start, now.end)]))
    if before is not None and before[1] and before[2]:
        unit, stay = before[0], [(before[1], before[2])]
        if now.cancelled or now.unit != unit:
            freed.append((unit, stay))
        elif now.start and now.end:
            freed.append((unit, spans.subtract(stay, [(now.start, now.end)])))
    return freed
