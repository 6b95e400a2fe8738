"""Write-back (opt-in, ``imports.block_in_escapia``, HSAPI only): a channel booking Escapia
shows free is blocked in Escapia by a maintenance work order (SaveWorkOrder), so that
Escapia's own channels stop selling those nights.

* **One per booking.** Each work order is mapped to the channel event it blocks (unit,
  channel and the event's keyed hash) in the account's imports state, and carries the same
  in a tag of its description (``work_order_tag``): a run never creates a second one for a
  booking, nor for the same nights of a unit twice (a booking in two exports), and a work
  order of ours whose mapping was lost (a create whose answer never came, state lost) is
  found again among the open work orders and taken back. A create is sent once, never
  retried. Only bookings are written back: an event the channel words as a block
  ("Not available": manual blocks, prep time) is reported, not written, unless the
  export's ``blocks_are_bookings`` says its blocks are bookings (Booking.com).
* **In force, or not ours.** A work order counts as blocking its booking only while
  Escapia lists it open (this run's SearchWorkOrders; the mapping alone when that is not
  granted): watch.py then judges the booking's other nights without it.
* **Moves follow.** When the booking's dates change, its work order is saved with the new
  ones (same id).
* **Repairs, twice.** A booking our work order should block but Escapia still shows free
  ``REPAIR_HOURS`` after our last save (completed or deleted in Escapia, or not in force)
  has its work order saved again, anew if Escapia no longer knows it (404); after
  ``MAX_REPAIRS`` a person is undoing it on purpose: it is left alone, the conflict stays.
* **Closing needs confirmation**, as the publish policy's losses do: the booking must be
  missing from at least two reads of the export, ``max(feeds.confirm_minutes,
  every_minutes)`` apart or more. When the export lists no booking at all, or more than
  half of the bookings we block (two at least) vanish from it at once, ``EMPTY_HOURS``:
  an export that suddenly empties is more likely broken than every booking cancelled. A
  failing export closes nothing. Closing saves the work order as Completed.
* **Bounded.** At most ``max_writes_per_run`` saves a run, in this order: moves, new
  blocks, repairs, closings; the rest wait for the next run, said in one line. A 403
  (SaveWorkOrder not granted) turns write-back off for the account with one line, retried
  once every FORBIDDEN_RETRY_HOURS; conflicts are still reported.
* **Recognisable.** The description starts with ``WORK_ORDER_PREFIX`` and names the channel
  and the nights, nothing of the guest. The end date sent is the booking's checkout day:
  whether Escapia reads it as the last night removed or the day after is not published,
  and this is the reading that cannot leave a booked night open (at worst the checkout
  night is blocked too).
* ``--dry-run`` says what it would do, within the same cap, and saves nothing.
* Work orders left behind (an export or ``block_in_escapia`` removed from the config) are
  never closed blindly: they are named in the status until someone closes them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from escapia_ical.config import Account
from escapia_ical.errors import SourceError
from escapia_ical.feeds.spans import Span
from escapia_ical.imports.book import ImportBook, feed_name
from escapia_ical.imports.conflicts import UNSYNCED, Conflict
from escapia_ical.imports.parse import ChannelEvent
from escapia_ical.sources.hsapi_work_orders import WorkOrder, WorkOrdersForbidden, work_order_tag
from escapia_ical.sources.http import HttpStatusError
from escapia_ical.state import moment

log = logging.getLogger(__name__)

WORK_ORDER_PREFIX = "escapia-ical:"
EMPTY_HOURS = 24
FORBIDDEN_RETRY_HOURS = 24
REPAIR_HOURS = 2  # a new work order shows at the next tick; the SearchWorkOrders fallback within the hour
MAX_REPAIRS = 2
ONE_DAY = dt.timedelta(days=1)


@dataclass
class WriteResult:
    done: list[str] = field(default_factory=list)  # what was saved (or would be, dry run)
    waiting: int = 0  # saves left for the next run (the per-run cap)
    off: str | None = None  # why write-back is off for the account now, if it is
    failed: list[str] = field(default_factory=list)  # saves that failed this run (retried next run)
    forbidden_now: bool = False  # this run found SaveWorkOrder not granted (an error, once)
    left: list[str] = field(default_factory=list)  # work orders of ours nothing manages any more


def identities(events: list[ChannelEvent]) -> dict[str, ChannelEvent]:
    """Return the events of one export by identity: its key when no other event of the
    export shares it (the occurrences of a recurring event do), else key and first night."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.key] = counts.get(event.key, 0) + 1
    return {(e.key if e.key and counts[e.key] == 1 else f"{e.key}@{e.start}"): e for e in events}


def own_nights(book: ImportBook, name: str, events: list[ChannelEvent],
               open_orders: dict[str, WorkOrder] | None) -> dict[ChannelEvent, Span]:
    """The events of export ``name`` that a work order of ours blocks with their dates and
    that is in force (open in ``open_orders``, when Escapia's list was read this run), with
    the nights Escapia blocks for it."""
    found = {}
    for identity, event in identities(events).items():
        write = book.writes.get(f"{name} {identity}")
        if not write or not _same_dates(write, event):
            continue
        order = open_orders.get(str(write.get("order"))) if open_orders is not None else None
        if open_orders is not None and (order is None or order.blocks() is None):
            continue  # completed or gone in Escapia: not ours to discount
        found[event] = order.blocks() if order is not None else (event.start, event.end + ONE_DAY)
    return found


def adopt(account: Account, book: ImportBook, open_orders: dict[str, WorkOrder] | None) -> list[str]:
    """Take back the open work orders of ours that no mapping names (a create whose answer
    was lost, or state lost), by the tag in their description; return their ids."""
    if open_orders is None or account.imports is None:
        return []
    mapped = {str(w.get("order")) for w in book.writes.values()}
    exports = {feed_name(f.unit, f.channel) for f in account.imports.feeds}
    taken = []
    for order in sorted(open_orders.values(), key=lambda o: o.id):
        if not order.tag or order.id in mapped or not (order.start and order.end):
            continue
        channel, key = order.tag.split(" ", 1)
        name = feed_name(order.unit, channel)
        if name not in exports:
            continue
        record = book.feeds.get(name)
        current = identities(record.events) if record else {}
        identity = next((i for i, e in current.items() if e.key == key and e.start == order.start), key)
        book.writes[f"{name} {identity}"] = {"unit": order.unit, "channel": channel, "order": order.id,
                                             "start": order.start.isoformat(), "end": order.end.isoformat(),
                                             "adopted": True}
        taken.append(order.id)
    return taken


def write_back(account: Account, source: Any, book: ImportBook, found: dict[str, Conflict],
               read_now: set[str], now: dt.datetime, confirm: dt.timedelta, dry_run: bool) -> WriteResult:
    """Create, move, repair and close the account's work orders (see the module); return
    what was done. ``found``: this run's conflicts; ``read_now``: the exports read this run
    (200 or 304). Never raises for a failed save: it is reported and retried next run."""
    settings = account.imports
    result = WriteResult()
    if settings is None:
        return result
    result.left = left_behind(account, book)
    if not settings.block_in_escapia:
        return result
    forbidden = moment(book.write_back.get("forbidden_since"))
    if forbidden is not None and now - forbidden < dt.timedelta(hours=FORBIDDEN_RETRY_HOURS):
        result.off = (f"SaveWorkOrder is not granted to this partner (HTTP 403 at {forbidden:%Y-%m-%d %H:%M} "
                      "UTC): write-back is off; conflicts are still reported")
        return result
    plan = _plan(account, book, found, read_now, now, confirm)
    for done, action in enumerate(plan):
        if done == settings.max_writes_per_run:
            result.waiting = len(plan) - done
            log.warning("%s: write-back: %d work order change(s) this run, the most "
                        "imports.max_writes_per_run allows; %d more wait for the next run", account.name,
                        settings.max_writes_per_run, result.waiting)
            break
        if dry_run:
            result.done.append(f"would {action.describe()}")
            log.warning("%s/%s: dry run: would %s", account.name, action.unit, action.describe())
            continue
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
    kind: str  # move, create, repair, close
    key: str  # "<unit> <channel> <identity>"
    unit: str
    channel: str
    start: dt.date
    end: dt.date
    event_key: str = ""
    order: str | None = None
    saved: str | None = None  # the work order id once saved

    @property
    def booking(self) -> str:
        return f"{self.channel} booking {self.start}..{self.end - ONE_DAY}"

    def describe(self) -> str:
        if self.kind == "create":
            return f"block the {self.booking} in Escapia with a new work order"
        if self.kind == "move":
            return f"move work order {self.order} to the {self.booking}"
        if self.kind == "repair":
            return f"save work order {self.order} again: Escapia still shows the {self.booking} free"
        return f"close work order {self.order} (the {self.booking} is gone from the export)"

    def done(self) -> str:
        if self.kind == "create":
            return f"{self.booking} blocked in Escapia by work order {self.saved}"
        if self.kind == "repair":
            return f"work order {self.saved} saved again for the {self.booking} (Escapia showed it free)"
        return self.describe().replace("move", "moved", 1).replace("close", "closed", 1)

    def apply(self, source: Any, book: ImportBook, now: dt.datetime) -> None:
        description = (f"{WORK_ORDER_PREFIX} {self.booking}, blocked from the channel's calendar; closed by "
                       f"escapia-ical when the booking goes {work_order_tag(self.channel, self.event_key)}")
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
                                 "created": previous.get("created") or stamp, "saved": stamp,
                                 "repairs": int(previous.get("repairs") or 0) + (self.kind == "repair")}


def _plan(account: Account, book: ImportBook, found: dict[str, Conflict], read_now: set[str],
          now: dt.datetime, confirm: dt.timedelta) -> list[_Action]:
    """Return the saves this run needs: moves, new blocks, repairs, then closings (what
    protects nights before what frees them)."""
    settings = account.imports
    assert settings is not None
    unsynced = {(c.unit, c.channel, c.start, c.end) for c in found.values() if c.kind == UNSYNCED}
    blocked = {(w.get("unit"), w.get("start"), w.get("end")) for w in book.writes.values()}
    moves, creations, repairs, closings = [], [], [], []
    for feed in settings.feeds:
        name = feed_name(feed.unit, feed.channel)
        record = book.feeds.get(name)
        if record is None or record.fetched is None or record.error is not None:
            continue  # never read, or failing: nothing is judged from it
        current = identities(record.events)
        bookings = {i for i, e in current.items() if not e.ours and (not e.block or feed.blocks_are_bookings)}
        for identity, event in sorted(current.items(), key=lambda item: item[1]):
            key = f"{name} {identity}"
            write = book.writes.get(key)
            if write is None:
                nights = (feed.unit, event.start.isoformat(), event.end.isoformat())
                if identity in bookings and (feed.unit, feed.channel, event.start, event.end) in unsynced \
                        and nights not in blocked:
                    blocked.add(nights)
                    creations.append(_Action("create", key, feed.unit, feed.channel, event.start, event.end,
                                             event.key))
                continue
            write.pop("missing_since", None)
            write.pop("missing_reads", None)
            if not _same_dates(write, event):
                moves.append(_Action("move", key, feed.unit, feed.channel, event.start, event.end, event.key,
                                     write.get("order")))
            elif (feed.unit, feed.channel, event.start, event.end) in unsynced:
                saved = moment(write.get("saved") or write.get("created"))
                if int(write.get("repairs") or 0) >= MAX_REPAIRS:
                    if not write.get("given_up"):
                        write["given_up"] = now.isoformat(timespec="seconds")
                        log.error("%s/%s: work order %s was undone in Escapia %d times: not saved again; "
                                  "the %s booking stays a conflict until someone decides", account.name,
                                  feed.unit, write.get("order"), MAX_REPAIRS, feed.channel)
                elif saved is None or now - saved >= dt.timedelta(hours=REPAIR_HOURS):
                    repairs.append(_Action("repair", key, feed.unit, feed.channel, event.start, event.end,
                                           event.key, write.get("order")))
        gone = [(key, write) for key, write in sorted(book.writes.items())
                if key.startswith(f"{name} ") and key[len(name) + 1:] not in current]
        mapped = sum(1 for key in book.writes if key.startswith(f"{name} "))
        suspicious = not bookings or (len(gone) >= 2 and len(gone) * 2 > mapped)
        for key, write in gone:
            if name in read_now:  # a read that does not list it: one more confirmation
                write.setdefault("missing_since", now.isoformat(timespec="seconds"))
                write["missing_reads"] = int(write.get("missing_reads") or 0) + 1
            since = moment(write.get("missing_since"))
            wait = dt.timedelta(hours=EMPTY_HOURS) if suspicious else confirm
            if since is not None and int(write.get("missing_reads") or 0) >= 2 and now - since >= wait:
                start, end = _dates(write)
                if start and end:
                    closings.append(_Action("close", key, feed.unit, feed.channel, start, end,
                                            order=write.get("order")))
    return moves + creations + repairs + closings


def left_behind(account: Account, book: ImportBook) -> list[str]:
    """The work orders of ours no export or setting manages any more (said in the status)."""
    settings = account.imports
    exports = {feed_name(f.unit, f.channel) for f in settings.feeds} if settings else set()
    managing = settings is not None and settings.block_in_escapia
    return sorted({str(w.get("order")) for key, w in book.writes.items()
                   if not managing or key.rsplit(" ", 1)[0] not in exports})


def _same_dates(write: dict[str, Any], event: ChannelEvent) -> bool:
    return (write.get("start"), write.get("end")) == (event.start.isoformat(), event.end.isoformat())


def _dates(write: dict[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    try:
        return dt.date.fromisoformat(write["start"]), dt.date.fromisoformat(write["end"])
    except (KeyError, TypeError, ValueError):
        return None, None
