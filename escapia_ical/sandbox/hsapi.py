"""The HSAPI operations the sandbox serves, shaped as in ``hsapi-openapi-extract.json``.

Sandbox choices where the contract is silent (clients must not depend on more than this):

* Paging (SearchUnitSummaries, SearchReservationSummaries): ``pageNumber`` is **1-based**
  (missing = 1; < 1 is a 400). ``pageSize`` missing/0 = 25, capped at ``max_page_size``
  (10,000 by default: Escapia answers a page size of millions, API-NOTES; tests set a small
  cap to make clients page).
  ``fromIndex`` is the 0-based index of the first result of the page, ``toIndex`` one past
  the last (so ``toIndex - fromIndex == len(results)``). A page beyond the end is empty.
* Units are sorted by ``code``; ``sortingMethod`` is ignored.
* Every JSON object in a response carries a ``"$id"`` key ("1", "2", ... in document order),
  as Json.NET reference handling produces on the real service.
* Request date ranges are inclusive at both ends; NonAvailability items are whole
  reservations/holds with a night in the range, neither merged nor clipped.
* Work orders that remove their unit from availability (not Completed) are NonAvailability
  items too, in the same form as a stay (endDate the day after the last night removed, or
  the last night with ``end_date="inclusive"``); see :mod:`.hsapi_work_orders`. So are
  contract blocks (:meth:`Sandbox.block_contract`), which no other operation shows.
* A cancelled reservation is still found by GetReservationById, with status Cancelled.
* GetReservationChanges with a ``startVersion`` above the current version (a client's cursor
  ahead of Escapia, e.g. after :meth:`Sandbox.restart_change_log`): the contract is silent,
  so this is invented; both behaviours are modelled so the client copes with either.
  ``Sandbox(future_versions="error")`` (default) answers 400; ``"empty"`` answers 200
  ``{"startVersion": N, "endVersion": N, "changes": []}``.
* Errors are JSON ``{"$id": "1", "status": <int>, "message": <str>}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from escapia_ical.sandbox.data import PMCID, Reservation, Unit

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox

DEFAULT_PAGE_SIZE = 25
CHANGES_PER_CALL = 100


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def with_ids(obj: Any) -> Any:
    """Copy of ``obj`` where every JSON object starts with a sequential ``"$id"``."""
    counter = [0]

    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            counter[0] += 1
            out = {"$id": str(counter[0])}
            out.update((k, walk(v)) for k, v in o.items())
            return out
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(obj)


def parse_date(value: Any, what: str) -> dt.date:
    if not isinstance(value, str):
        raise ApiError(400, f"{what} is required (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise ApiError(400, f"{what} is not a date: {value!r}") from None


def parse_range(obj: Any, what: str) -> tuple[dt.date, dt.date]:
    if not isinstance(obj, dict):
        raise ApiError(400, f"{what} is required: {{startDate, endDate}}")
    start = parse_date(obj.get("startDate"), f"{what}.startDate")
    end = parse_date(obj.get("endDate"), f"{what}.endDate")
    if end < start:
        raise ApiError(400, f"{what}: endDate {end} is before startDate {start}")
    return start, end


def iso(d: dt.date) -> str:
    return d.isoformat()


def page(body: dict, max_size: int, items: list, render) -> dict:
    size, number = body.get("pageSize"), body.get("pageNumber")
    if size in (None, 0):
        size = DEFAULT_PAGE_SIZE
    if number is None:
        number = 1
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ApiError(400, f"pageSize must be a positive integer, got {size!r}")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ApiError(400, f"pageNumber is 1-based, got {number!r}")
    size = min(size, max_size)
    start = min((number - 1) * size, len(items))
    chunk = items[start:start + size]
    return {"results": [render(x) for x in chunk], "totalCount": len(items), "pageSize": size,
            "pageNumber": number, "fromIndex": start, "toIndex": start + len(chunk)}


def unit_summary(u: Unit) -> dict:
    return {"code": u.code, "name": u.name, "headline": u.headline, "sleeps": u.sleeps,
            "bedrooms": u.bedrooms, "bathrooms": u.bathrooms, "available": True,
            "detailURL": f"https://sandbox.invalid/units/{u.num}", "address": "",
            "totalComplimentaryNights": 0, "availableComplimentaryNights": 0,
            "id": u.num, "pmcid": PMCID, "nativePMSID": u.id}


def guest(r: Reservation) -> dict | None:
    g = r.guest
    if g is None:
        return None
    return {"firstName": g.first, "middleName": "", "lastName": g.last,
            "addresses": [{"street1": g.street, "city": g.city, "state": g.state, "zip": g.zip,
                           "country": "US", "isPrimary": True}],
            "phones": [{"countryCode": "1", "areaCode": g.area_code, "number": g.phone,
                        "isPrimary": True}],
            "emails": [{"address": g.email, "isPrimary": True}],
            "isPrimaryGuest": True, "isVIP": False, "isWarn": False, "notes": "",
            "fullNameLastCommaFirst": f"{g.last}, {g.first}",
            "fullNameFirstMiddleLast": f"{g.first} {g.last}", "fullNameFirstLast": f"{g.first} {g.last}",
            "id": g.num, "pmcid": PMCID, "nativePMSID": str(g.num)}


def stay_range(r: Reservation) -> dict:
    return {"startDate": iso(r.start), "endDate": iso(r.end)}


def reservation_summary(r: Reservation) -> dict:
    return {"reservationNumber": r.id, "stayDateRange": stay_range(r), "unitNativePMSID": r.unit_id,
            "primaryGuest": guest(r), "guestCount": r.adults + r.children, "rent": r.rent,
            "total": r.total, "paymentTotal": r.total, "holdType": r.hold_type, "confirmed": True,
            "paymentStatus": "FullyPaid" if r.total else "Unpaid", "bookedByTravelAgent": False,
            "isLockOff": False, "id": r.num, "pmcid": PMCID, "nativePMSID": r.id}


def reservation(r: Reservation) -> dict:
    g = guest(r)
    return {"reservationNumber": r.id, "stayDateRange": stay_range(r), "unitNativePMSID": r.unit_id,
            "guests": [g] if g else [], "doorCode": r.door_code, "adults": r.adults,
            "children": r.children, "rent": r.rent, "tax": r.tax, "discount": 0.0,
            "total": r.total, "paymentTotal": r.total, "serviceFee": r.fee, "notes": [],
            "holdType": r.hold_type, "immovable": False,
            "status": "Confirmed" if r.active else "Cancelled",
            "paymentStatus": "FullyPaid" if r.total else "Unpaid",
            "createdBy": "sandbox", "createdAt": r.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "isLockOff": False, "checkInTime": "16:00:00", "checkOutTime": "10:00:00",
            "id": r.num, "pmcid": PMCID, "nativePMSID": r.id}


# -- operations: (sandbox, body, query) -> JSON payload; called with the sandbox lock held --
def list_pmcs(sb: Sandbox, body: Any, query: dict) -> Any:
    return [{"endSystem": "EscapiaVRS", "pmcid": PMCID, "name": "Sandbox Vacation Rentals",
             "address": {"street1": "1 Sandbox Way", "city": "Lahaina", "state": "HI",
                         "zip": "96761", "country": "US"},
             "email": {"address": "reservations@sandbox.invalid", "isPrimary": True},
             "phone": {"countryCode": "1", "areaCode": "808", "number": "555-0100"},
             "url": "https://sandbox.invalid/"}]


def search_unit_summaries(sb: Sandbox, body: Any, query: dict) -> Any:
    spec = body.get("specification") or {}
    if not isinstance(spec, dict):
        raise ApiError(400, "specification must be an object")
    units = sb.data.search_units(spec.get("unitCode"), spec.get("unitNameOrCode"))
    return page(body, sb.max_page_size, units, unit_summary)


def get_unit_non_availability(sb: Sandbox, body: Any, query: dict) -> Any:
    start, last = parse_range(body.get("dateRange"), "dateRange")
    unit_id = body.get("nativePMSUnitID")
    if not isinstance(unit_id, str) or not unit_id:
        raise ApiError(400, "nativePMSUnitID is required")
    if unit_id not in sb.data.units:
        raise ApiError(404, f"unit {unit_id!r} not found")
    shift = dt.timedelta(days=1 if sb.end_date == "inclusive" else 0)
    items = []
    for r in sb.data.overlapping(unit_id, start, last):
        item: dict = {"dateRange": {"startDate": iso(r.start), "endDate": iso(r.end - shift)}}
        if sb.guest_data_in_nonavailability and r.guest is not None:
            g = r.guest
            item.update(guestName=f"{g.first} {g.last}", guestEmail=g.email,
                        guestPhone=f"+1 ({g.area_code}) {g.phone}", reservationNumber=r.id,
                        totalPrice=r.total)
        items.append(item)
    blocks = [w.nights for w in sb.data.blocking_work_orders(unit_id)] + sb.data.contract_spans(unit_id)
    for first, stop in blocks:  # type: ignore[misc]
        if first <= last and stop > start:  # in the same form as a stay: one item per work order/contract
            items.append({"dateRange": {"startDate": iso(first), "endDate": iso(stop - shift)}})
    return items


def get_reservation_changes(sb: Sandbox, body: Any, query: dict) -> Any:
    raw = query.get("startVersion")
    try:
        start = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"startVersion must be an integer, got {raw!r}") from None
    if start > sb.data.version and sb.future_versions == "empty":  # see the module docstring
        return {"startVersion": start, "endVersion": start, "changes": []}
    if start < 0 or start > sb.data.version:  # a version this feed never issued
        raise ApiError(400, f"startVersion {start} is not a version of this change feed")
    changes, end = sb.data.changes_since(start, CHANGES_PER_CALL)
    return {"startVersion": start, "endVersion": end,
            "changes": [{"nativePMSID": c.reservation_id, "changeType": c.change_type,
                         "changeTime": c.time.strftime("%Y-%m-%dT%H:%M:%SZ")} for c in changes]}


def get_reservation_by_id(sb: Sandbox, body: Any, query: dict) -> Any:
    rid = query.get("id")
    if not rid:
        raise ApiError(400, "id is required")
    # Cancelled reservations are still found, with status "Cancelled" (the contract's
    # Reservation.status enum has it), so a client can tell which unit they freed.
    res = sb.data.reservations.get(rid)
    if res is None:
        raise ApiError(404, f"reservation {rid!r} not found")
    return reservation(res)


def search_reservation_summaries(sb: Sandbox, body: Any, query: dict) -> Any:
    spec = body.get("specification") or {}
    if not isinstance(spec, dict):
        raise ApiError(400, "specification must be an object")
    unit_ids = spec.get("unitNativePMSIDs") or None
    strings = isinstance(unit_ids, list) and all(isinstance(u, str) for u in unit_ids)
    if unit_ids is not None and not strings:
        raise ApiError(400, "unitNativePMSIDs must be a list of strings")
    date_spec, date_range, method = spec.get("stayDateRangeSearchSpecification"), None, "Overlap"
    if date_spec is not None:
        if not isinstance(date_spec, dict):
            raise ApiError(400, "stayDateRangeSearchSpecification must be an object")
        date_range = parse_range(date_spec.get("dateRange"), "stayDateRangeSearchSpecification.dateRange")
        method = date_spec.get("dateRangeSearchMethod") or "Overlap"
        if method not in ("Overlap", "StartDate", "EndDate"):
            raise ApiError(400, f"unknown dateRangeSearchMethod {method!r}")
    found = sb.data.search_reservations(unit_ids, date_range, method, spec.get("holdTypes") or None)
    return page(body, sb.max_page_size, found, reservation_summary)


# name -> (HTTP method, handler, takes a JSON body, needs x-homeaway-hasp-api-pmcid)
OPERATIONS = {
    "ListPmcs": ("GET", list_pmcs, False, False),
    "SearchUnitSummaries": ("POST", search_unit_summaries, True, True),
    "GetUnitNonAvailability": ("POST", get_unit_non_availability, True, True),
    "GetReservationChanges": ("GET", get_reservation_changes, False, True),
    "GetReservationById": ("GET", get_reservation_by_id, False, True),
    "SearchReservationSummaries": ("POST", search_reservation_summaries, True, True),
}
# The work-order operations build on the helpers above (hence imported here, not at the top).
from escapia_ical.sandbox import hsapi_work_orders  # noqa: E402

OPERATIONS.update(hsapi_work_orders.OPERATIONS)
TOKEN_OP = "auth/token"
OP_ALIASES = {"GenerateToken": TOKEN_OP}


def check_headers(headers, needs_pmcid: bool) -> None:
    version = headers.get("x-homeaway-hasp-api-version")
    if version != "10":
        raise ApiError(400, f"header x-homeaway-hasp-api-version must be 10, got {version!r}")
    end_system = headers.get("x-homeaway-hasp-api-endsystem")
    if end_system != "EscapiaVRS":
        raise ApiError(400, f"header x-homeaway-hasp-api-endsystem must be EscapiaVRS, got {end_system!r}")
    if needs_pmcid:
        pmcid = headers.get("x-homeaway-hasp-api-pmcid")
        if not pmcid:
            raise ApiError(400, "header x-homeaway-hasp-api-pmcid is required")
        if pmcid != PMCID:
            raise ApiError(403, f"PMC {pmcid!r} has not enabled this partner")


def parse_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def basic_credentials(value: str | None) -> tuple[str, str] | None:
    if not value or value[:6].lower() != "basic ":
        return None
    try:
        user, sep, secret = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, secret) if sep else None
