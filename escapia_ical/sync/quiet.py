"""Quiet ticks for EscapiaNET accounts: ask which units changed, fetch only those.

Each tick sends one summary batch (``UnitCalendarAvailBatch`` with ``SummaryOnly="true"`` and
``UpdatedAfter``): Escapia answers with each changed unit's ``LastUpdated`` and no calendar.
A unit is fetched when its ``LastUpdated`` differs from the one stored when it was last
fetched; so are units new to us, units whose fetch is owed (it failed), and units whose
loss of nights the publish policy holds. Few units are read one by one (UnitCalendarAvail);
more than ``PER_UNIT_LIMIT`` (or a ``per_unit`` account's) take one full batch.

``UpdatedAfter`` is the previous tick's start minus ``OVERLAP`` (a day): a clock that is
off, a time zone read differently, or a date-only ``UpdatedAfter`` (an older schema) then
only means units listed again, never a change lost; listed again with the same
``LastUpdated``, a unit is not fetched again. An answer that says ``CachedData="true"``
may be stale: its units are used, but the mark does not move, so the next tick asks again
from the same point.

``LastUpdated`` may have whole seconds: a second change within the second the summary showed,
made after the unit was read, would leave the stamp as it was. So a unit read one by one
after a summary is read once more at the next tick (its stamp is stored as "settling") and
only then stored as read; the calendar and stamp of one full batch come from one answer.
(A per_unit account's full tick stores what its summary showed: a change in that same
second after the unit was read waits for the next reconcile.)

Every ``reconcile_hours`` the tick is a full one, as in full mode: the units are listed
again (UnitSearch; the list is cached in between) and every calendar is read (one full
batch), which corrects anything ``LastUpdated`` did not show. ``--full`` forces it.

State (``state_dir/accounts/<account>/escapianet.json``), checked when read: a file of the
wrong shape is reported and the account does a full tick.
  mark           when the last trusted answer was asked for (ISO, UTC); absent -> full tick
  reconciled_at  when the last full tick was (ISO, UTC)
  units          the distributed units, listed_at when, truncated whether Escapia cut the list
  stamps         unit -> LastUpdated as of its last successful fetch ("" if not known)
  pending        units whose fetch is owed
Saved only after the run's feeds were handled: a crash means the same question is asked again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from escapia_ical.config import Account, EscapianetAccount
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.state import AccountState, describe, read_state, write_state
from escapia_ical.sync.incremental import add_units

if TYPE_CHECKING:  # loaded by make_source for an EscapiaNET account only (with its XML stack)
    from escapia_ical.sources.escapianet import EscapianetSource

log = logging.getLogger(__name__)

STATE_FILE = "escapianet.json"
OVERLAP = dt.timedelta(days=1)
PER_UNIT_LIMIT = 25  # changed units read one by one; beyond, one full batch
SETTLING = "~"  # before a stored LastUpdated: read once after the summary, read once more


@dataclass
class Plan:
    """What one tick of one EscapiaNET account fetches, and what to store once it is done."""

    units: list[Unit]
    fetch: set[str]
    reasons: dict[str, int]
    listed_at: str
    truncated: bool
    full: bool  # every calendar (the reconcile)
    stamps: dict[str, str] = field(default_factory=dict)  # unit -> LastUpdated the summary showed
    cached: bool = False  # the summary said CachedData
    asked_at: dt.datetime | None = None  # when the tick asked: the next mark
    freed: dict = field(default_factory=dict)  # no change feed: no evidence for the policy


def quiet_tracker(account: Account, state: AccountState) -> QuietTracker | None:
    """Return the tracker of an EscapiaNET account in incremental mode, else None."""
    if isinstance(account, EscapianetAccount) and account.mode == "incremental":
        return QuietTracker(account, state)
    return None


def prefetch_batch(source: Any, account: Account, window: FeedWindow, fetch: int) -> None:
    """Fetch a batch account's batch before its units, so that credentials it refuses are
    one account error (AuthError), not one per unit. Other failures stay the units' own."""
    if not fetch or account.api != "escapianet":  # (an HSAPI run never loads EscapiaNET's modules)
        return
    # A plain import: it waits while another account's thread is still loading the module.
    from escapia_ical.sources.escapianet import EscapianetSource

    if isinstance(source, EscapianetSource) and not source.read_per_unit:
        try:
            source.load_batch(window)
        except AuthError:
            raise
        except SourceError:
            pass


def listing_truncated(source: Any, plan: Any) -> bool:
    """Whether the run's unit list is known to be cut short (EscapiaNET ``Units/@moredata``)."""
    return bool(getattr(plan, "truncated", False) or getattr(source, "listing_truncated", False))


def check_listing(source: Any, plan: Plan | None) -> None:
    """Raise SourceError if Escapia's unit list was cut short (``Units/@moredata``): the
    units listed were synced, the ones beyond the cut would silently go stale."""
    if listing_truncated(source, plan):
        count = f"{len(plan.units)} " if plan is not None else ""
        raise SourceError(f"UnitSearch: Escapia cut the unit list short (moredata): the {count}units listed "
                          "were synced, any beyond them were not (list the units to publish in `units:`, "
                          "or ask Escapia to distribute fewer per login)")


class QuietTracker:
    """Plans and records the quiet ticks of one EscapiaNET account."""

    def __init__(self, account: EscapianetAccount, state: AccountState):
        self.account = account
        self.path = state.folder / STATE_FILE
        self.data = checked(read_state(self.path), self.path)
        self.period = dt.timedelta(hours=account.reconcile_hours)
        self._source: EscapianetSource | None = None

    def plan(self, source: EscapianetSource, now: dt.datetime, *, full: bool = False,
             deadline: float = math.inf, held: set[str] = frozenset()) -> Plan:
        """Return this tick's plan: a full tick when forced (``full``), due, or without a
        mark; else the units the summary shows changed, plus owed, held and new ones."""
        self._source = source
        data = self.data
        due = full or data["mark"] is None or now - data["reconciled_at"] >= self.period
        units, listed_at, truncated = data["units"], data["listed_at"], data["truncated"]
        if due or not units or listed_at is None or now - listed_at >= self.period:
            units, listed_at, truncated = source.list_units(), now, source.listing_truncated
        ids = self._tracked(units)
        if due:  # a per_unit account learns the LastUpdated of its units first (one summary)
            per_unit = self.account.calendar_mode == "per_unit"
            known = source.changed_units(now - OVERLAP) if per_unit else ({}, False)
            return Plan(units, ids, {"full": len(ids)}, listed_at.isoformat(), truncated, full=True,
                        stamps=known[0], cached=known[1], asked_at=now)
        seen, cached = source.changed_units(data["mark"] - OVERLAP)
        if set(seen) - {u.id for u in units} and listed_at != now:  # a unit new to the list
            units, listed_at, truncated = source.list_units(), now, source.listing_truncated
            ids = self._tracked(units)
        stored = data["stamps"]
        reasons: dict[str, int] = {}
        # A stamp without a time (none, or a date only) cannot tell two changes apart: a unit
        # listed with one is always read.
        changed = {u for u, stamp in seen.items()
                   if u in ids and (stored.get(u) != stamp or not stamp or "T" not in stamp)}
        settling = {u for u in changed if stored.get(u) == SETTLING + seen[u]}
        fetch = add_units(set(), reasons, "changed", changed - settling)
        add_units(fetch, reasons, "settling", settling)
        add_units(fetch, reasons, "pending", set(data["pending"]) & ids)
        add_units(fetch, reasons, "held", set(held) & ids)
        add_units(fetch, reasons, "new", ids - set(stored))
        if self.account.calendar_mode == "batch":
            source.read_per_unit = len(fetch) <= PER_UNIT_LIMIT
        return Plan(units, fetch, reasons, listed_at.isoformat(), truncated, full=False, stamps=seen,
                    cached=cached, asked_at=now)

    def commit(self, plan: Plan, succeeded: set[str], now: dt.datetime) -> None:
        """Store what was fetched; move the mark unless an answer came from Escapia's cache."""
        source = self._source
        # Stamps of the batch count only where the calendars came from it (not a batch loaded
        # merely to explain a loss of units read one by one: those settle as below).
        from_batch = source.batch_stamps if source is not None and not source.read_per_unit else {}
        cached = plan.cached or (source is not None and source.batch_from_cache)
        ids = self._tracked(plan.units)
        stamps = {u: s for u, s in self.data["stamps"].items() if u in ids}
        for unit in succeeded:
            if unit in from_batch or plan.full:  # one answer: the calendar is as of its stamp
                stamps[unit] = from_batch.get(unit) or plan.stamps.get(unit) or stamps.get(unit, "")
            elif unit in plan.stamps:  # read after the summary: settle once (see the docstring)
                seen = plan.stamps[unit]
                stamps[unit] = seen if stamps.get(unit) == SETTLING + seen else SETTLING + seen
            else:
                stamps[unit] = stamps.get(unit, "")
        mark, reconciled = self.data["mark"], self.data["reconciled_at"]
        if not cached:
            mark = plan.asked_at or now
            if plan.full:
                reconciled = mark
        self.data = {"mark": mark, "reconciled_at": reconciled, "units": plan.units,
                     "listed_at": dt.datetime.fromisoformat(plan.listed_at), "truncated": plan.truncated,
                     "stamps": stamps, "pending": sorted((plan.fetch - succeeded) & ids)}
        write_state(self.path, to_json(self.data))

    def _tracked(self, units: list[Unit]) -> set[str]:
        wanted = self.account.units
        return {u.id for u in units if wanted == "all" or u.id in wanted}


EMPTY: dict[str, Any] = {"mark": None, "reconciled_at": dt.datetime.min.replace(tzinfo=dt.UTC), "units": [],
                         "listed_at": None, "truncated": False, "stamps": {}, "pending": []}


def checked(data: Any, path: Any) -> dict[str, Any]:
    """Return the state file's content, or the empty state (a full tick) if any part of it
    has the wrong shape (reported once)."""
    if data is None:
        return dict(EMPTY)
    try:
        if not isinstance(data, dict):
            raise TypeError("not a mapping")
        units = [Unit(_text(u["id"]), _text(u["name"]), _text(u.get("code", "")))
                 for u in _list(data["units"])]
        stamps = data["stamps"]
        if not isinstance(stamps, dict) or not all(isinstance(v, str) for v in stamps.values()):
            raise TypeError("stamps")
        if not isinstance(data["truncated"], bool):
            raise TypeError("truncated")
        return {"mark": _time(data["mark"]) if data["mark"] is not None else None,
                "reconciled_at": _time(data["reconciled_at"]), "units": units,
                "listed_at": _time(data["listed_at"]), "truncated": data["truncated"],
                "stamps": dict(stamps), "pending": [_text(u) for u in _list(data["pending"])]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("state %s is not as expected (%s); doing a full sync, which rewrites it",
                    describe(path), exc.__class__.__name__)
        return dict(EMPTY)


def to_json(data: dict[str, Any]) -> dict[str, Any]:
    return {"mark": data["mark"].isoformat() if data["mark"] else None,
            "reconciled_at": data["reconciled_at"].isoformat(),
            "units": [{"id": u.id, "name": u.name, "code": u.code} for u in data["units"]],
            "listed_at": data["listed_at"].isoformat(), "truncated": data["truncated"],
            "stamps": data["stamps"], "pending": data["pending"]}


def _time(value: Any) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(_text(value))
    if stamp.tzinfo is None:
        raise ValueError("a time without its offset")
    return stamp


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
