"""HSAPI work orders in the sandbox: SearchWorkOrders, GetWorkOrder and SaveWorkOrder, shaped
as ``WorkOrder`` / ``PagedSearchResults_WorkOrder`` in ``hsapi-openapi-extract.json``, and
the controls tests use (:class:`WorkOrderControls`, mixed into the Sandbox).

A work order with ``workOrderRemovesUnitFromAvailability`` blocks its unit's nights in
GetUnitNonAvailability (and in EscapiaNET's calendars) but never appears in
GetReservationChanges: the published artefacts say so. Invented where they are silent:

* ``endDateWhenUnitIsRemovedFromAvailability`` is the **last night removed** (inclusive).
* Every status but ``Completed`` keeps blocking (``Posted`` too).
* SearchWorkOrders' ``startDateRange`` filters on
  ``startDateWhenUnitIsRemovedFromAvailability``, inclusive at both ends; an order without
  one never matches it. The body is the flat ``PagedWorkOrderSearchSpecification``
  (``nativeUnitID``, ``statuses[]``, ``startDateRange``, ``pageSize``, ``pageNumber``; the
  other filters are ignored), paged like the other searches. Results by work-order id.
* Dates are sent the .NET way, ``YYYY-MM-DDT00:00:00``; an order without removal dates
  sends .NET's empty date ``0001-01-01T00:00:00``.
* GetWorkOrder with an unknown ``nativeWorkOrderId`` answers 404. SaveWorkOrder creates an
  order when the body has no ``nativePMSID``, updates it when the id is known, and answers
  404 for an unknown one; it needs ``unit.nativePMSID`` to create.
* ``Sandbox.work_orders_granted = False`` answers 403 to all three operations (each must be
  granted to the partner, as the contract's 403 says).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from escapia_ical.sandbox.data import PMCID, WORK_ORDER_STATUSES, WorkOrder
from escapia_ical.sandbox.hsapi import ApiError, page, parse_range

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox

EMPTY_DATE = "0001-01-01T00:00:00"  # .NET's default(DateTime)


def _net_date(day: dt.date | None) -> str:
    return f"{day.isoformat()}T00:00:00" if day else EMPTY_DATE


def work_order(sb: Sandbox, w: WorkOrder) -> dict:
    """The contract's WorkOrder, with made-up detail a client must not need or keep."""
    u = sb.data.units[w.unit_id]
    return {"unit": {"code": u.code, "name": u.name, "headline": u.headline, "id": u.num, "pmcid": PMCID,
                     "nativePMSID": u.id},
            "workOrderTasks": [], "workOrderNumber": f"WO-{w.num}", "description": w.description,
            "reservationNumber": "", "status": w.status,
            "workOrderRemovesUnitFromAvailability": w.removes,
            "startDateWhenUnitIsRemovedFromAvailability": _net_date(w.start),
            "endDateWhenUnitIsRemovedFromAvailability": _net_date(w.end),
            "priority": "Medium", "reportedBy": "Front desk", "reportedOn": _net_date(w.modified.date()),
            "vendorName": "Kahana Plumbing & Repair LLC", "assignedEmployeeName": "Mele Kealoha",
            "isInternal": False, "actualCost": 0.0, "estimatedCost": 185.5, "tax": 0.0, "totalCost": 0.0,
            "createdOn": _net_date(w.modified.date()),
            "completedOn": _net_date(w.modified.date() if w.status == "Completed" else None),
            "isGuestWorkOrder": False, "active": w.status != "Completed",
            "id": w.num, "pmcid": PMCID, "nativePMSID": w.id}


def _granted(sb: Sandbox, op: str) -> None:
    if not sb.work_orders_granted:
        raise ApiError(403, f"{op} has not been granted to this partner")


def search_work_orders(sb: Sandbox, body: Any, query: dict) -> Any:
    _granted(sb, "SearchWorkOrders")
    unit_id, statuses = body.get("nativeUnitID"), body.get("statuses")
    if unit_id is not None and not isinstance(unit_id, str):
        raise ApiError(400, "nativeUnitID must be a string")
    if statuses is not None and (not isinstance(statuses, list)
                                 or any(s not in WORK_ORDER_STATUSES for s in statuses)):
        raise ApiError(400, f"statuses must be a list of {WORK_ORDER_STATUSES}")
    start_range = body.get("startDateRange")
    start_range = parse_range(start_range, "startDateRange") if start_range else None
    found = sb.data.search_work_orders(unit_id or None, statuses or None, start_range)
    return page(body, sb.max_page_size, found, lambda w: work_order(sb, w))


def get_work_order(sb: Sandbox, body: Any, query: dict) -> Any:
    _granted(sb, "GetWorkOrder")
    order_id = query.get("nativeWorkOrderId")
    if not order_id:
        raise ApiError(400, "nativeWorkOrderId is required")
    order = sb.data.work_orders.get(order_id)
    if order is None:
        raise ApiError(404, f"work order {order_id!r} not found")
    return work_order(sb, order)


def save_work_order(sb: Sandbox, body: Any, query: dict) -> Any:
    _granted(sb, "SaveWorkOrder")
    changes: dict[str, Any] = {}
    unit = body.get("unit")
    if isinstance(unit, dict) and unit.get("nativePMSID") is not None:
        changes["unit_id"] = unit["nativePMSID"]
    for key, field in (("status", "status"), ("workOrderRemovesUnitFromAvailability", "removes"),
                       ("description", "description")):
        if key in body:
            changes[field] = body[key]
    for key, field in (("startDateWhenUnitIsRemovedFromAvailability", "start"),
                       ("endDateWhenUnitIsRemovedFromAvailability", "end")):
        if key in body:
            changes[field] = _request_date(body[key], key)
    order_id = body.get("nativePMSID")
    try:
        if not order_id:
            if "unit_id" not in changes:
                raise ApiError(400, "unit.nativePMSID is required to create a work order")
            unit_id = changes.pop("unit_id")
            order_id = sb.data.add_work_order(unit_id, changes.pop("start", None), changes.pop("end", None),
                                              **{k: v for k, v in changes.items()})
        elif order_id not in sb.data.work_orders:
            raise ApiError(404, f"work order {order_id!r} not found")
        else:
            sb.data.change_work_order(order_id, **changes)
    except KeyError as exc:
        raise ApiError(400, f"unknown unit {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    return work_order(sb, sb.data.work_orders[order_id])


def _request_date(value: Any, what: str) -> dt.date | None:
    if value in (None, "", EMPTY_DATE) or (isinstance(value, str) and value.startswith("0001-01-01")):
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{what} must be a date")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise ApiError(400, f"{what} is not a date: {value[:40]!r}") from None


# name -> (HTTP method, handler, takes a JSON body, needs x-homeaway-hasp-api-pmcid)
OPERATIONS = {
    "SearchWorkOrders": ("POST", search_work_orders, True, True),
    "GetWorkOrder": ("GET", get_work_order, False, True),
    "SaveWorkOrder": ("PUT", save_work_order, True, True),
}


class WorkOrderControls:
    """The Sandbox's work-order controls (it provides ``_lock`` and ``data``)."""

    work_orders_granted = True  # False: the work-order operations answer 403

    def add_work_order(self, unit_id: str, start: dt.date | None, end: dt.date | None, *,
                       status: str = "Scheduled", removes: bool = True) -> str:
        """Add a work order removing ``unit_id`` from ``start`` to ``end`` (the last night,
        inclusive); return its id. Raise KeyError/ValueError for an unknown unit or bad data."""
        with self._lock:  # type: ignore[attr-defined]
            return self.data.add_work_order(unit_id, start, end, status=status,  # type: ignore[attr-defined]
                                            removes=removes)

    def change_work_order(self, order_id: str, **changes: Any) -> None:
        """Change ``status``, ``removes``, ``start``, ``end`` or ``unit_id`` of a work order."""
        with self._lock:  # type: ignore[attr-defined]
            self.data.change_work_order(order_id, **changes)  # type: ignore[attr-defined]

    def complete_work_order(self, order_id: str) -> None:
        self.change_work_order(order_id, status="Completed")

    def work_orders(self, unit_id: str | None = None) -> list[dict]:
        """``{"id", "unit", "status", "removes", "start", "end"}`` (ISO dates or None), by id."""
        with self._lock:  # type: ignore[attr-defined]
            return [{"id": w.id, "unit": w.unit_id, "status": w.status, "removes": w.removes,
                     "start": w.start.isoformat() if w.start else None,
                     "end": w.end.isoformat() if w.end else None}
                    for w in self.data.search_work_orders(unit_id, None, None)]  # type: ignore[attr-defined]
