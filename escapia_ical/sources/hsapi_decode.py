"""Decoding HSAPI JSON answers into the shared model.

Unknown keys (``"$id"``, guest data, anything new) are ignored; a missing or mistyped key
we rely on is a SourceError naming the operation and what was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from escapia_ical.errors import SourceError
from escapia_ical.feeds.kinds import kind_of_hold_type
from escapia_ical.model import Unit
from escapia_ical.sources.dates import known_date
from escapia_ical.sources.dates import parse_api_date as parse_date

ONE_DAY = dt.timedelta(days=1)


def parse_json(body: bytes, operation: str) -> Any:
    """Return the decoded JSON body. Raise SourceError if it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(f"{operation}: answer is not valid JSON ({exc.__class__.__name__})") from None


def parse_unit_page(body: Any) -> tuple[list[Unit], int | None, list[str]]:
    """Given a SearchUnitSummaries answer, return (units, totalCount, problems).

    Summaries without a usable nativePMSID cannot be fetched: they are left out and
    described in ``problems`` rather than failing the whole account.
    """
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise SourceError("SearchUnitSummaries: expected an object with a 'results' list")
    total = body.get("totalCount")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    units, problems = [], []
    for index, summary in enumerate(body["results"]):
        if not isinstance(summary, dict):
            problems.append(f"result {index} is {_kind(summary)}, not an object")
            continue
        native_id = summary.get("nativePMSID")
        if isinstance(native_id, int) and not isinstance(native_id, bool):
            native_id = str(native_id)
        if not isinstance(native_id, str) or not native_id:
            problems.append(f"result {index} (code {str(summary.get('code'))[:40]!r}) has no nativePMSID")
            continue
        code = summary.get("code") if isinstance(summary.get("code"), str) else ""
        names = (summary.get(key) for key in ("name", "headline"))
        name = next((n for n in names if isinstance(n, str) and n.strip()), code or native_id)
        units.append(Unit(id=native_id, name=name.strip(), code=code))
    return units, total, problems


def parse_nonavailability(body: Any, what: str) -> tuple[list[tuple[dt.date, dt.date]], list[str]]:
    """Given a GetUnitNonAvailability answer, return its (startDate, endDate) pairs as sent,
    and one line per item that blocks nothing: a ``null`` item or one without ``dateRange``
    (the contract requires no field of NonAvailability).

    Json.NET references (``{"$ref": "<id>"}``) are resolved against the ``$id``s of the same
    answer. Raise SourceError where the meaning is not clear, rather than drop a block: an
    unresolvable ``$ref``, an item or dateRange that is not an object, a missing or
    malformed date, .NET's empty date (``0001-01-01``) or an end before the start.
    """
    if not isinstance(body, list):
        raise SourceError(f"{what}: expected a JSON array, got {_kind(body)}")
    ids: dict[str, Any] | None = None  # built at the first reference: most answers have none
    pairs, empty = [], []
    for index, item in enumerate(body):
        if item is None:
            empty.append(f"item {index} is null")
            continue
        referenced = isinstance(item, dict) and "$ref" in item
        if referenced:
            ids = _json_net_ids(body) if ids is None else ids
            item = _resolved(item, ids, f"{what}: item {index}")
        if not isinstance(item, dict):
            raise SourceError(f"{what}: item {index} is {_kind(item)}, not an object")
        date_range = item.get("dateRange")
        if date_range is None and (referenced or "startDate" in item or "endDate" in item):
            # A reference to something that is not an item (a dateRange itself?), or dates
            # where an item has none: what it blocks is unclear, never read as nothing.
            raise SourceError(f"{what}: item {index} is not a NonAvailability item (a $ref to another "
                              "object, or dates outside a dateRange)")
        if date_range is None:
            empty.append(f"item {index} has no dateRange")
            continue
        if isinstance(date_range, dict) and "$ref" in date_range:
            ids = _json_net_ids(body) if ids is None else ids
            date_range = _resolved(date_range, ids, f"{what}: item {index} dateRange")
        if not isinstance(date_range, dict):
            raise SourceError(f"{what}: item {index} dateRange is {_kind(date_range)}, not an object")
        # Dates already read come from the cache without naming the item (a cold sync reads
        # half a million): the description is written only for one that needs parsing.
        first, checkout = date_range.get("startDate"), date_range.get("endDate")
        start = known_date(first) or parse_date(first, f"{what}: item {index} startDate")
        end = known_date(checkout) or parse_date(checkout, f"{what}: item {index} endDate")
        if start == NET_EMPTY_DATE or end == NET_EMPTY_DATE:
            name = "startDate" if start == NET_EMPTY_DATE else "endDate"
            raise SourceError(f"{what}: item {index} {name} is .NET's empty date (0001-01-01): "
                              "the calendar is unclear")
        if end < start:
            raise SourceError(f"{what}: item {index} ends ({end}) before it starts ({start}): "
                              "the calendar is unclear")
        pairs.append((start, end))
    return pairs, empty


NET_EMPTY_DATE = dt.date(1, 1, 1)  # default(DateTime): what .NET sends for "no date"


def _json_net_ids(value: Any) -> dict[str, Any]:
    """Return ``$id`` -> object for every object of a Json.NET answer."""
    found: dict[str, Any] = {}
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("$id"), str):
                found.setdefault(current["$id"], current)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


def _resolved(value: Any, ids: dict[str, Any], what: str) -> Any:
    """Return the object a Json.NET ``{"$ref": id}`` stands for (``value`` itself if it is
    not a reference). Raise SourceError if the answer has no such ``$id``."""
    if isinstance(value, dict) and "$ref" in value:
        target = ids.get(value["$ref"]) if isinstance(value["$ref"], str) else None
        if target is None or "$ref" in target:
            raise SourceError(f"{what}: $ref {str(value['$ref'])[:20]!r} names no object of the answer")
        return target
    return value


@dataclass(frozen=True)
class Reservation:
    """What the sync needs of a reservation or hold: its unit, its stay (None if the answer
    has no usable one), whether it is cancelled, its kind (from ``holdType``, see
    :mod:`escapia_ical.feeds.kinds`) and its id (nativePMSID; None if a summary has none).
    Nothing else is kept: no guest, amount or reservation number."""

    unit: str | None
    start: dt.date | None
    end: dt.date | None  # the departure day
    cancelled: bool = False
    kind: str = "reservation"
    id: str | None = None


def parse_reservation(body: Any, reservation_id: str) -> Reservation:
    """Given a GetReservationById answer, return the reservation. Raise SourceError if it
    names no unit (without one the change cannot be placed)."""
    what = f"GetReservationById {reservation_id!r}"
    if not isinstance(body, dict):
        raise SourceError(f"{what}: expected a Reservation object, got {_kind(body)}")
    unit = _native_id(body.get("unitNativePMSID"))
    if unit is None:
        raise SourceError(f"{what}: answer has no unitNativePMSID")
    start, end = _stay(body.get("stayDateRange"), what)
    return Reservation(unit, start, end, body.get("status") == "Cancelled",
                       kind_of_hold_type(body.get("holdType")), reservation_id)


def parse_reservation_page(body: Any) -> tuple[list[Reservation], int | None]:
    """Given a SearchReservationSummaries answer, return (its reservations, totalCount),
    each with its kind and id (``nativePMSID``). Raise SourceError if it is not a page of
    results, or a result has no stay: a stay we cannot read could be the one that books a
    night."""
    what = "SearchReservationSummaries"
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise SourceError(f"{what}: expected an object with a 'results' list")
    total = body.get("totalCount")
    found = []
    for index, summary in enumerate(body["results"]):
        if not isinstance(summary, dict):
            raise SourceError(f"{what}: result {index} is {_kind(summary)}, not an object")
        start, end = _stay(summary.get("stayDateRange"), f"{what}: result {index}")
        if start is None or end is None:
            raise SourceError(f"{what}: result {index} has no stayDateRange")
        unit = _native_id(summary.get("unitNativePMSID"))
        found.append(Reservation(unit, start, max(end, start + ONE_DAY),  # a day-use stay: one night
                                 kind=kind_of_hold_type(summary.get("holdType")),
                                 id=_native_id(summary.get("nativePMSID"))))
    return found, total if isinstance(total, int) and not isinstance(total, bool) else None


def _stay(value: Any, what: str) -> tuple[dt.date | None, dt.date | None]:
    if not isinstance(value, dict):
        return None, None
    try:
        return (parse_date(value.get("startDate"), f"{what} startDate"),
                parse_date(value.get("endDate"), f"{what} endDate"))
    except SourceError:
        return None, None


def _native_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: a reservation (or hold), how and when it changed."""

    reservation: str
    kind: str = ""  # changeType: Create | Update | Delete ("" if absent)
    time: str = ""  # changeTime as sent ("" if absent)


def parse_changes(body: Any) -> tuple[list[Change], int | None]:
    """Given a GetReservationChanges answer (ChangeList), return its changes and its
    endVersion (None if absent)."""
    if not isinstance(body, dict):
        raise SourceError(f"GetReservationChanges: expected a ChangeList object, got {_kind(body)}")
    changes = body.get("changes") or []
    if not isinstance(changes, list):
        raise SourceError("GetReservationChanges: 'changes' is not a list")
    found = []
    for change in changes:
        native_id = _native_id(change.get("nativePMSID") if isinstance(change, dict) else None)
        if native_id is None:
            raise SourceError("GetReservationChanges: a change has no reservation nativePMSID")
        kind, time = change.get("changeType"), change.get("changeTime")
        found.append(Change(native_id, kind if isinstance(kind, str) else "",
                            time if isinstance(time, str) else ""))
    end = body.get("endVersion")
    if end is not None and (not isinstance(end, int) or isinstance(end, bool)):
        raise SourceError("GetReservationChanges: endVersion is not an integer")
    return found, end


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
