"""HSAPI work orders: what the sync needs of them, and nothing more.

A work order with ``workOrderRemovesUnitFromAvailability`` blocks its unit between
``startDateWhenUnitIsRemovedFromAvailability`` and ``endDateWhenUnitIsRemovedFromAvailability``
but never appears in GetReservationChanges. Whether that end date is the last night removed
or the day after is not published, so each use takes the reading that cannot free a booked
night: :meth:`WorkOrder.blocks` (what it may book) reads the end inclusively, and
:meth:`WorkOrder.surely_blocked` (what its closing may free) exclusively. Only the unit,
the flag, the dates and the status are kept: no description, vendor, cost or reservation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from escapia_ical.errors import SourceError
from escapia_ical.feeds.spans import Span
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.hsapi_decode import NET_EMPTY_DATE
from escapia_ical.sources.http import HttpStatusError

ONE_DAY = dt.timedelta(days=1)
# Every status of the contract's enum but Completed: an order in any of these may block.
OPEN_STATUSES = ["Pending", "Started", "Assigned", "Entered", "Approved", "Scheduled", "Posted"]
PAGE_SIZE = 1000
MAX_PAGES = 1000


class WorkOrdersForbidden(SourceError):
    """The work-order operations are not granted to this partner (HTTP 403)."""


@dataclass(frozen=True)
class WorkOrder:
    id: str
    unit: str
    removes: bool
    start: dt.date | None
    end: dt.date | None  # as sent: the last night removed, or the day after (unknown)
    status: str
    # Ours (imports/writeback.py): "<channel> <event key>" from the tag in its description;
    # nothing else of a description is kept (people write guests' names there).
    tag: str = ""

    @property
    def open(self) -> bool:
        return self.status != "Completed"

    def blocks(self) -> Span | None:
        """The nights it may keep booked (the end read inclusively), or None."""
        if not (self.removes and self.open and self.start and self.end) or self.end < self.start:
            return None
        return self.start, self.end + ONE_DAY

    def surely_blocked(self) -> Span | None:
        """The nights it certainly blocked (the end read exclusively), or None."""
        if not (self.removes and self.start and self.end) or self.end < self.start:
            return None
        return self.start, max(self.end, self.start + ONE_DAY)

    def to_json(self) -> list:
        return [self.unit, self.removes, _iso(self.start), _iso(self.end), self.status]

    @classmethod
    def from_json(cls, order_id: str, value: Any) -> WorkOrder:
        """The inverse of :meth:`to_json`; raise TypeError/ValueError if it is not one."""
        unit, removes, start, end, status = value
        if not (isinstance(unit, str) and isinstance(removes, bool) and isinstance(status, str)):
            raise TypeError("not a work order")
        return cls(order_id, unit, removes, _date(start), _date(end), status)


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value is not None else None


def parse_work_order(body: Any, what: str) -> WorkOrder:
    """Given a WorkOrder object, return what the sync keeps of it. Raise SourceError if it
    names no id or unit, or a date is malformed (.NET's empty date is no date)."""
    if not isinstance(body, dict):
        raise SourceError(f"{what}: expected a WorkOrder object")
    order_id = body.get("nativePMSID")
    unit = body.get("unit").get("nativePMSID") if isinstance(body.get("unit"), dict) else None
    if not isinstance(order_id, str) or not order_id or not isinstance(unit, str) or not unit:
        raise SourceError(f"{what}: a work order without nativePMSID or unit.nativePMSID")
    dates = []
    for key in ("startDateWhenUnitIsRemovedFromAvailability", "endDateWhenUnitIsRemovedFromAvailability"):
        value = body.get(key)
        day = None if value in (None, "") else parse_api_date(value, f"{what} {order_id} {key}")
        dates.append(None if day == NET_EMPTY_DATE else day)
    status = body.get("status") if isinstance(body.get("status"), str) else ""
    found = _TAG.search(body["description"]) if isinstance(body.get("description"), str) else None
    return WorkOrder(order_id, unit, body.get("workOrderRemovesUnitFromAvailability") is True, *dates, status,
                     f"{found[1]} {found[2]}" if found else "")


def work_order_tag(channel: str, key: str) -> str:
    """The tag a work order blocking a channel booking carries in its description: how a
    later run recognises it as ours, whatever became of the state."""
    return f"[escapia-ical {channel} {key}]"


_TAG = re.compile(r"\[escapia-ical ([a-z0-9][a-z0-9_.-]{0,39}) ([0-9a-f]{16})\]")


Call = Callable[..., Any]  # HsapiSource._call


def search_open_work_orders(call: Call, check: Callable[[], None],
                            unit: str | None = None) -> dict[str, WorkOrder]:
    """Return every work order not Completed (of ``unit``, or all), by id, walking all pages
    of SearchWorkOrders. Raise WorkOrdersForbidden on a 403; ``check`` raises when the
    run's deadline passed (between pages)."""
    found: dict[str, WorkOrder] = {}
    seen: set[str] = set()
    for page in range(1, MAX_PAGES + 1):
        if page > 1:
            check()
        # No startDateRange: which date it filters on is not published, and an open order
        # left out by it would look closed. The open statuses bound the list well enough.
        spec: dict[str, Any] = {"statuses": OPEN_STATUSES, "pageSize": PAGE_SIZE, "pageNumber": page}
        if unit is not None:
            spec["nativeUnitID"] = unit
        body = _forbidden_as_such(call, "POST", "SearchWorkOrders", json=spec)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise SourceError("SearchWorkOrders: expected an object with a 'results' list")
        fresh = [parse_work_order(r, "SearchWorkOrders") for r in results]
        if fresh and {w.id for w in fresh} <= seen:
            raise SourceError(f"SearchWorkOrders: page {page} repeats work orders already seen")
        seen |= {w.id for w in fresh}
        found.update((w.id, w) for w in fresh if w.open)  # (a server ignoring the filter)
        total = body.get("totalCount")
        if not fresh and isinstance(total, int) and len(seen) < total:
            # The orders past it would look closed: refetches, and a view calling their nights free.
            raise SourceError(f"SearchWorkOrders: page {page} is empty but totalCount is {total} and "
                              f"{len(seen)} were read: the list is incomplete")
        if not fresh or (isinstance(total, int) and len(seen) >= total):
            return found
    raise SourceError(f"SearchWorkOrders: more than {MAX_PAGES} pages")


def get_work_order(call: Call, order_id: str) -> WorkOrder | None:
    """Return one work order (GetWorkOrder); None if Escapia does not know it (404)."""
    try:
        body = _forbidden_as_such(call, "GET", "GetWorkOrder", params={"nativeWorkOrderId": order_id})
    except HttpStatusError as exc:
        if exc.status == 404:
            return None
        raise
    return parse_work_order(body, f"GetWorkOrder {order_id!r}")


def save_work_order(call: Call, unit: str, start: dt.date, end: dt.date, description: str, *,
                    order_id: str | None = None, status: str = "Scheduled") -> WorkOrder:
    """Create (no ``order_id``) or update a work order that removes ``unit`` from
    availability from ``start`` to ``end`` (SaveWorkOrder); return it as Escapia saved it.
    ``end`` is sent as it is: whether Escapia reads it as the last night removed or the day
    after is not published, so callers send the checkout day (the reading that cannot
    leave a booked night open). Sent once, never retried: a create is not idempotent (a
    lost answer is found again by its description's tag, :func:`work_order_tag`). Raise
    WorkOrdersForbidden on a 403, SourceError if the answer is not that work order saved
    as asked."""
    body: dict[str, Any] = {
        "unit": {"nativePMSID": unit}, "description": description, "status": status,
        "workOrderRemovesUnitFromAvailability": True,
        "startDateWhenUnitIsRemovedFromAvailability": start.isoformat(),
        "endDateWhenUnitIsRemovedFromAvailability": end.isoformat(),
    }
    if order_id is not None:
        body["nativePMSID"] = order_id
    saved = parse_work_order(_forbidden_as_such(call, "PUT", "SaveWorkOrder", json=body, retry=False),
                             "SaveWorkOrder")
    if saved.unit != unit or (order_id is not None and saved.id != order_id):
        raise SourceError(f"SaveWorkOrder: answered work order {saved.id} of unit {saved.unit}, "
                          f"not {order_id or 'a new one'} of {unit}")
    if status != "Completed" and not (saved.removes and saved.start == start and saved.end == end):
        raise SourceError(f"SaveWorkOrder: work order {saved.id} was saved, but does not remove the unit "
                          f"from {start} to {end} as asked")
    return saved


def _forbidden_as_such(call: Call, method: str, operation: str, **kwargs: Any) -> Any:
    try:
        return call(method, operation, **kwargs)
    except HttpStatusError as exc:
        if exc.status == 403:
            raise WorkOrdersForbidden(f"{operation} is not granted to this partner (HTTP 403)") from None
        raise
