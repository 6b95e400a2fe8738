"""Write-back (opt-in, ``imports.block_in_escapia``, HSAPI only): a channel booking Escapia
shows free is blocked in Escapia by a maintenance work order (SaveWorkOrder), so that
Escapia's own channels stop selling those nights.

* **One per booking.** Each work order is mapped to the channel event it blocks (unit,
  channel and the event's opaque key) in the account's imports state: a run never creates
  a second one for the same booking, and the booking's later conflicts are judged with
  that work order known to be ours (watch.py leaves them out).
* **Moves follow.** When the booking's dates change, its work order is saved with the new
  ones (same id).
* **Repairs.** A booking our work order should block but Escapia still shows free
  ``REPAIR_HOURS`` after the last save (someone completed or deleted the work order in
  Escapia, or it is not in force) has its work order saved again; one Escapia no longer
  knows (404) is created anew, and one gone from Escapia is forgotten when its booking goes.
* **Closing needs confirmation**, as the publish policy's losses do: the booking must be
  missing from at least two reads of the export, ``max(feeds.confirm_minutes,
  every_minutes)`` apart or more; from an export that lists nothing at all, for
  ``EMPTY_HOURS`` (an export that suddenly empties is more likely broken than every booking
  cancelled). A failing export closes nothing. Closing saves the work order as Completed.
* **Bounded.** At most ``max_writes_per_run`` saves a run; the rest wait for the next run,
  said in one line. A 403 (SaveWorkOrder not granted) turns write-back off for the account
  with one line, retried once every FORBIDDEN_RETRY_HOURS; conflicts are still reported.
* **Recognisable.** Every work order we create says so in its description
  (``WORK_ORDER_PREFIX``). Its end date is the booking's checkout day: whether Escapia
  reads that date as the last night removed or the day after is not published, and this
  is the reading that cannot leave a booked night open (at worst the checkout night is
  blocked too).
* ``--dry-run`` says what it would do and saves nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from escapia_ical.config import Account
from escapia_ical.errors import SourceError
from escapia_ical.imports.book import ImportBook, feed_name
from escapia_ical.imports.conflicts import UNSYNCED, Conflict
from escapia_ical.imports.parse import ChannelEvent
from escapia_ical.sources.hsapi_work_orders import WorkOrdersForbidden
from escapia_ical.sources.http import HttpStatusError
from escapia_ical.state import moment

log = logging.getLogger(__name__)

WORK_ORDER_PREFIX = "escapia-ical:"
EMPTY_HOURS = 24
REPAIR_HOURS = 2  # a new work order shows at the next tick; the SearchWorkOrders fallback within the hour
FORBIDDEN_RETRY_HOURS = 24


@dataclass
class WriteResult:
    done: list[str] = field(default_factory=list)  # what was saved (or would be, dry run)
    waiting: int = 0  # saves left for the next run (the per-run cap)
    off: str | None = None  # why write-back is off for the account now, if it is
    failed: list[str] = field(default_factory=list)  # saves that failed this run (retried next run)
    forbidden_now: bool = False  # this run found SaveWorkOrder not granted (an error, once)


def identities(events: list[ChannelEvent]) -> dict[str, ChannelEvent]:
    """Return the events of one export by identity: its key when no other event of the
    export shares it (the occurrences of a recurring event do), else key and first night."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.key] = counts.get(event.key, 0) + 1
    return {(e.key if e.key and counts[e.key] == 1 else f"{e.key}@{e.start}"): e for e in events}


def covered(book: ImportBook, name: str, events: list[ChannelEvent]) -> set[ChannelEvent]:
    """The events of export ``name`` that a work order of ours blocks with their dates."""
    found = set()
    for identity, event in identities(events).items():
        write = book.writes.get(f"{name} {identity}")
        if write and _same_dates(write, event):
            found.add(event)
    return found


def write_back(account: Account, source: Any, book: ImportBook, found: dict[str, Conflict],
               read_now: set[str], now: dt.datetime, confirm: dt.timedelta, dry_run: bool) -> WriteResult:
    """Create, move and close the account's work orders (see the module); return what was
    done. ``found``: this run's conflicts; ``read_now``: the exports read this run (200 or
    304). Never raises for a failed save: it is reported and retried at the next run."""
    settings = account.imports
    result = WriteResult()
    if settings is None or not settings.block_in_escapia:
        return result
    forbidden = moment(book.write_back.get("forbidden_since"))
    if forbidden is not None and now - forbidden < dt.timedelta(hours=FORBIDDEN_RETRY_HOURS):
        result.off = (f"SaveWorkOrder is not granted to this partner (HTTP 403 at {forbidden:%Y-%m-%d %H:%M} "
                      "UTC): write-back is off; conflicts are still reported")
        return result
    plan = _plan(account, book, found, read_now, now, confirm)
    budget = settings.max_writes_per_run
    for action in plan:
        if budget == 0:
            result.waiting = len(plan) - plan.index(action)
            log.warning("%s: write-back: %d work order change(s) this run, the most "
                        "imports.max_writes_per_run allows; %d more wait for the next run", account.name,
                        settings.max_writes_per_run, result.waiting)
            break
        if dry_run:
            result.done.append(f"would {action.describe()}")
            log.warning("%s/%s: dry run: would %s", account.name, action.unit, action.describe())
            continue
        budget -= 1
        try:
            action.apply(source, book, now)
        except WorkOrdersForbidden as exc:
            book.write_back["forbidden_since"] = now.isoformat(timespec="seconds")
            result.forbidden_now = True
            result.off = f"{exc}: write-back is off for this account (retried in {FORBIDDEN_RETRY_HOURS} h)"
            log.error("%s: %s; conflicts are still reported. Ask Escapia to grant SaveWorkOrder to this "
                      "partner, or set imports.block_in_escapia: false", account.name, result.off)
            return result
        except SourceError as exc:
            result.failed.append(f"{action.unit}: {action.describe()}: {exc}")
            log.warning("%s/%s: could not %s: %s (tried again next run)", account.name, action.unit,
                        action.describe(), exc)
            continue
        result.done.append(action.describe())
        log.warning("%s/%s: %s", account.name, action.unit, action.done())
    book.write_back.pop("forbidden_since", None)
    return result


@dataclass
class _Action:
    kind: str  # create, move, repair, close
    key: str  # "<unit> <channel> <identity>"
    unit: str
    channel: str
    start: dt.date
    end: dt.date
    order: str | None = None
    saved: str | None = None  # the work order id once saved

    def describe(self) -> str:
        what = self.booking
        if self.kind == "create":
            return f"block the {what} in Escapia with a new work order"
        if self.kind == "move":
            return f"move work order {self.order} to the {what}"
        if self.kind == "repair":
            return f"save work order {self.order} again: Escapia still shows the {what} free"
        return f"close work order {self.order} (the {what} is gone from the export)"

    @property
    def booking(self) -> str:
        return f"{self.channel} booking {self.start}..{self.end - dt.timedelta(days=1)}"

    def done(self) -> str:
        if self.kind == "create":
            return f"{self.booking} blocked in Escapia by work order {self.saved}"
        if self.kind == "repair":
            return f"work order {self.saved} saved again for the {self.booking} (Escapia showed it free)"
        return self.describe().replace("move", "moved", 1).replace("close", "closed", 1)

    def apply(self, source: Any, book: ImportBook, now: dt.datetime) -> None:
        description = (f"{WORK_ORDER_PREFIX} {self.booking} (blocked by escapia-ical from the channel's "
                       "calendar; closed by it when the booking goes)")
        if self.kind == "close":
            try:
                source.save_work_order(self.unit, self.start, self.end, description, order_id=self.order,
                                       status="Completed")
            except HttpStatusError as exc:
                if exc.status != 404:  # (404: Escapia no longer knows it; nothing left to close)
                    raise
            del book.writes[self.key]
            return
        try:
            saved = source.save_work_order(self.unit, self.start, self.end, description, order_id=self.order)
        except HttpStatusError as exc:
            if exc.status != 404 or self.order is None:
                raise
            saved = source.save_work_order(self.unit, self.start, self.end, description)  # gone: anew
        self.saved = saved.id
        previous = book.writes.get(self.key, {})
        stamp = now.isoformat(timespec="seconds")
        book.writes[self.key] = {"unit": self.unit, "channel": self.channel, "order": saved.id,
                                 "start": self.start.isoformat(), "end": self.end.isoformat(),
                                 "created": previous.get("created") or stamp, "saved": stamp}


def _plan(account: Account, book: ImportBook, found: dict[str, Conflict], read_now: set[str],
          now: dt.datetime, confirm: dt.timedelta) -> list[_Action]:
    """Return the saves this run needs: moves and closings first (they correct what we
    did), then the new blocks, in date order."""
    settings = account.imports
    assert settings is not None
    unsynced = {(c.unit, c.channel, c.start, c.end) for c in found.values() if c.kind == UNSYNCED}
    corrections, creations = [], []
    for feed in settings.feeds:
        name = feed_name(feed.unit, feed.channel)
        record = book.feeds.get(name)
        if record is None or record.fetched is None or record.error is not None:
            continue  # never read, or failing: nothing is judged from it
        current = identities(record.events)
        for identity, event in sorted(current.items(), key=lambda item: item[1]):
            key = f"{name} {identity}"
            write = book.writes.get(key)
            if write is None:
                if (feed.unit, feed.channel, event.start, event.end) in unsynced:
                    creations.append(_Action("create", key, feed.unit, feed.channel, event.start, event.end))
                continue
            write.pop("missing_since", None)
            write.pop("missing_reads", None)
            if not _same_dates(write, event):
                corrections.append(_Action("move", key, feed.unit, feed.channel, event.start, event.end,
                                           write.get("order")))
            elif (feed.unit, feed.channel, event.start, event.end) in unsynced:
                saved = moment(write.get("saved") or write.get("created"))
                if saved is None or now - saved >= dt.timedelta(hours=REPAIR_HOURS):
                    corrections.append(_Action("repair", key, feed.unit, feed.channel, event.start, event.end,
                                               write.get("order")))
        for key, write in sorted(book.writes.items()):
            if not key.startswith(f"{name} ") or key[len(name) + 1:] in current:
                continue
            if name in read_now:  # a read that does not list it: one more confirmation
                write.setdefault("missing_since", now.isoformat(timespec="seconds"))
                write["missing_reads"] = int(write.get("missing_reads") or 0) + 1
            since = moment(write.get("missing_since"))
            wait = dt.timedelta(hours=EMPTY_HOURS) if not record.events else confirm
            if since is not None and int(write.get("missing_reads") or 0) >= 2 and now - since >= wait:
                start, end = _dates(write)
                if start and end:
                    corrections.append(_Action("close", key, feed.unit, feed.channel, start, end,
                                               write.get("order")))
    return corrections + creations


def _same_dates(write: dict[str, Any], event: ChannelEvent) -> bool:
    return (write.get("start"), write.get("end")) == (event.start.isoformat(), event.end.isoformat())


def _dates(write: dict[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    try:
        return dt.date.fromisoformat(write["start"]), dt.date.fromisoformat(write["end"])
    except (KeyError, TypeError, ValueError):
        return None, None
