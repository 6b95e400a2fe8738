"""Incremental sync for HSAPI accounts: follow the change feed, fetch only what changed.

Each tick asks ``GetReservationChanges`` what happened since the last version seen (one
request when nothing did), maps changed reservations to their units with
``GetReservationById`` (which also answers for cancelled ones), and fetches only those
units. A reconcile still fetches every unit once per ``reconcile_hours``, spread over the
ticks (each unit has a slot), so no tick fetches everything and a change the feed missed
is corrected within that period. Unit discovery happens at the same pace.

State (``state_dir/accounts/<account>/changes.json``):
  cursor        the change-feed version to ask from; absent -> a full sync, then the
                cursor is taken from the feed (also when Escapia rejects it)
  units         the distributed units and when they were listed
  reservations  reservation id -> unit id, to also refetch the unit a stay moved away from
  fetched       unit id -> when it was last fetched successfully
  pending       units whose fetch is owed (it failed, or the run deadline came first)
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
from typing import Any

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import DeadlineReached
from escapia_ical.model import Unit
from escapia_ical.sources.hsapi import CursorRejected, HsapiSource
from escapia_ical.state import AccountState, read_json, write_json

log = logging.getLogger(__name__)

TICK = dt.timedelta(minutes=5)  # the cron interval the reconcile is spread over
MAX_REMEMBERED_RESERVATIONS = 50_000


@dataclass
class Plan:
    """What one tick of one account fetches, and the state to keep once it is done."""

    units: list[Unit]
    fetch: set[str]
    cursor: int
    reasons: dict[str, int] = field(default_factory=dict)  # why units are fetched, for -v
    reservations: dict[str, str] = field(default_factory=dict)
    listed_at: str = ""
    owed: set[str] = field(default_factory=set)  # changed units not listed: fetched once they are


def forget_units(state: AccountState) -> None:
    """Drop the cached unit list, so that the next sync lists the units again."""
    path = state.folder / "changes.json"
    data = read_json(path)
    if isinstance(data, dict) and data.pop("listed_at", None) is not None:
        write_json(path, data)


class ChangeTracker:
    """Plans and records the incremental sync of one HSAPI account."""

    def __init__(self, account: HsapiAccount, state: AccountState):
        self.account = account
        self.path = state.folder / "changes.json"
        data = read_json(self.path)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.period = dt.timedelta(hours=account.reconcile_hours)

    def plan(self, source: HsapiSource, now: dt.datetime, *, full: bool = False,
             deadline: float = math.inf) -> Plan:
        """Return this tick's plan. ``full`` fetches every unit (and keeps the cursor going).
        Raise DeadlineReached if reading the change feed outlasts ``deadline``."""
        units, listed_at = self._units(source, now, rediscover=full)
        reservations = {str(k): str(v) for k, v in (self.data.get("reservations") or {}).items()}
        cursor = self.data.get("cursor")
        if not isinstance(cursor, int) or isinstance(cursor, bool):
            cursor = None
        if cursor is not None:
            try:
                changed, new_cursor = source.changes_since(cursor, deadline)
            except CursorRejected as exc:
                log.warning("%s: %s; fetching every unit", self.account.name, exc)
                cursor = None
        if cursor is None:  # first run, lost state or rejected cursor: fetch everything, and
            # follow the feed from now on (skipping the history: those units are all fetched)
            _, new_cursor = source.changes_since(source.recent_version(deadline), deadline)
            everything = self._tracked(units)
            return Plan(units, everything, new_cursor, {"full": len(everything)}, reservations, listed_at)
        ids = self._tracked(units)
        reasons: dict[str, int] = {}
        if len(changed) > len(ids):  # cheaper to fetch every unit than to look each one up
            return Plan(units, ids, new_cursor, {"many changes": len(ids)}, reservations, listed_at)
        touched = self._changed_units(source, changed, reservations, deadline)
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
        fetch = self._add(set(), reasons, "changed", touched & ids)
        if full:
            self._add(fetch, reasons, "full", ids)
        pending = set(self.data.get("pending") or [])
        self._add(fetch, reasons, "pending", pending & ids)
        unlisted |= pending - {u.id for u in units}  # owed, still not listed: keep owing
        fetched = self.data.get("fetched") or {}
        self._add(fetch, reasons, "new", {u for u in ids if u not in fetched})
        self._add(fetch, reasons, "reconcile", {u for u in ids if self._due(u, fetched.get(u), now)})
        return Plan(units, fetch, new_cursor, reasons, reservations, listed_at, owed=unlisted)

    def commit(self, plan: Plan, succeeded: set[str], now: dt.datetime) -> None:
        """Save the cursor and what was fetched; owe the units whose fetch did not succeed."""
        fetched = dict(self.data.get("fetched") or {})
        fetched.update((u, now.isoformat()) for u in succeeded)
        ids = self._tracked(plan.units)
        reservations = dict(list(plan.reservations.items())[-MAX_REMEMBERED_RESERVATIONS:])
        self.data = {
            "cursor": plan.cursor,
            "units": [{"id": u.id, "name": u.name, "code": u.code} for u in plan.units],
            "listed_at": plan.listed_at,
            "reservations": reservations,
            "fetched": {u: t for u, t in fetched.items() if u in ids},
            "pending": sorted(((plan.fetch - succeeded) & ids) | plan.owed),
        }
        write_json(self.path, self.data)

    # -- the parts of a plan ----------------------------------------------------------

    def _units(self, source: HsapiSource, now: dt.datetime, *, rediscover: bool) -> tuple[list[Unit], str]:
        """Return the distributed units: from state, or rediscovered once per period."""
        cached, listed_at = self.data.get("units"), self.data.get("listed_at")
        try:
            fresh = now - dt.datetime.fromisoformat(listed_at) < self.period
        except (TypeError, ValueError):
            fresh = False
        if cached and fresh and not rediscover and isinstance(cached, list):
            try:
                return [Unit(str(u["id"]), str(u["name"]), str(u.get("code", ""))) for u in cached], listed_at
            except (KeyError, TypeError):
                pass
        return source.list_units(), now.isoformat()

    def _tracked(self, units: list[Unit]) -> set[str]:
        """Return the ids of the listed units this account publishes (``units:`` may list)."""
        wanted = self.account.units
        return {u.id for u in units if wanted == "all" or u.id in wanted}

    def _changed_units(self, source: HsapiSource, changed: set[str], reservations: dict[str, str],
                       deadline: float) -> set[str]:
        """Return the units touched by the changed reservations (where they are now, and
        where they were, for a stay moved between units); remember where they are."""
        units = set()
        for reservation in sorted(changed):
            if time.monotonic() > deadline:
                raise DeadlineReached("the run deadline passed while mapping changes to units; "
                                      "they are read again at the next run")
            now_in, before_in = source.reservation_unit(reservation), reservations.pop(reservation, None)
            units |= {u for u in (now_in, before_in) if u}
            if now_in:
                reservations[reservation] = now_in
            elif before_in is None:
                log.info("%s: change to unknown reservation %s ignored (the reconcile covers it)",
                         self.account.name, reservation)
        return units

    def _due(self, unit_id: str, last: str | None, now: dt.datetime) -> bool:
        """Is the unit's reconcile due? At its slot of the period if its last fetch is at
        least half a period old (so a tick just after a full sync fetches nothing), and
        always once it is a whole period old (missed ticks)."""
        try:
            age = now - dt.datetime.fromisoformat(last)
        except (TypeError, ValueError):
            return True
        if age >= self.period:
            return True
        slots = max(1, round(self.period / TICK))
        slot = int(hashlib.sha256(unit_id.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % slots
        return age >= self.period / 2 and slot == int(now.timestamp() // TICK.total_seconds()) % slots

    @staticmethod
    def _add(fetch: set[str], reasons: dict[str, int], reason: str, units: set[str]) -> set[str]:
        new = units - fetch
        if new:
            reasons[reason] = reasons.get(reason, 0) + len(new)
        fetch |= new
        return fetch
