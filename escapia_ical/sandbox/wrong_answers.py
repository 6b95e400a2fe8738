"""Consistent wrongness: content faults whose answers parse, name the asked unit and are still
wrong (listed below; :mod:`.faults` applies them), so only a publish policy can catch them.

They change calendar answers only, whatever ``op`` says: HSAPI GetUnitNonAvailability (one
calendar), EscapiaNET UnitCalendarAvail (one ``UnitCalendarAvailSegments``) and
UnitCalendarAvailBatch (one ``UnitCalendarAvail`` per unit; ``unit`` picks one of them). The
change feed and the reservation operations keep telling the truth. The sandbox sends one
segment per calendar, covering the requested range (the batch: :meth:`Sandbox.batch_range`).

==================  =================  ==================================================
fault               params (defaults)  what the client gets
==================  =================  ==================================================
same_answer         source="1020-101"  ``source``'s calendar for the asked range under the
                                       asked unit's UnitCode/UnitName (a cache-key
                                       collision); ``source``'s own answer is untouched
shift               days=30            every blocked range moved ``days`` (may be < 0):
                                       HSAPI start/endDate, EscapiaNET StartDate/EndDate
                                       with the string unchanged
flaky               every=3            every ``every``-th calendar answer empty (HSAPI
                                       ``[]``, EscapiaNET all ``A``), for ever; one counter
                                       per fault, each unit of a batch counts
short_string        keep=3             EscapiaNET: DailyAvailability cut to ``keep``
                                       characters, StartDate/EndDate still the whole range
short_coverage      days=3             EscapiaNET: the segment covers its first ``days``
                                       days only (string cut, EndDate = StartDate+days-1)
duplicate_calendar  conflict=True      EscapiaNET: the unit's calendar twice in the answer
                                       (batch UnitCalendarAvail, per unit
                                       UnitCalendarAvailSegments); the copy all ``A`` with
                                       ``conflict``, else identical
==================  =================  ==================================================

All of these are invented failure modes, modelled on what a review saw or feared; the
published artefacts (HSAPI's OpenAPI, EscapiaNET's WSDLs and schema classes) are silent on
each: nothing says an answer is computed for the request that asked (EscapiaNET only flags
``@CachedData``), that dates are never offset, that an empty list or an all-``A`` string is
never transient, that ``DailyAvailability``'s length matches StartDate/EndDate or the asked
range (the batch's span is the server's choice), or that a unit appears once per answer. A
``flaky`` fault with ``times`` counts the answers it emptied (a batch is one).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import xml.etree.ElementTree as ET  # noqa: S405 - parses the sandbox's own answers only
from typing import TYPE_CHECKING, Any

from escapia_ical.sandbox import escapianet, hsapi
from escapia_ical.sandbox.data import ONE_DAY
from escapia_ical.sandbox.escapianet import q

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.faults import Answer, Fault
    from escapia_ical.sandbox.server import Sandbox

# name -> default params (faults.FAULTS lists them as content faults)
FAULTS: dict[str, dict[str, Any]] = {
    "same_answer": {"source": "1020-101"},
    "shift": {"days": 30},
    "flaky": {"every": 3},
    "short_string": {"keep": 3},
    "short_coverage": {"days": 3},
    "duplicate_calendar": {"conflict": True},
}
_WHOLE_NUMBERS = {"shift": ("days", -3650, 3650), "flaky": ("every", 1, 1 << 30),
                  "short_string": ("keep", 1, 1 << 20), "short_coverage": ("days", 1, 1 << 20)}
CALENDARS = (q("UnitCalendarAvail"), q("UnitCalendarAvailSegments"))


def check_params(name: str, p: dict[str, Any]) -> None:
    """Raise ValueError naming a bad parameter of one of :data:`FAULTS`."""
    if name in _WHOLE_NUMBERS:
        key, low, high = _WHOLE_NUMBERS[name]
        value = p[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name}: {key} must be a whole number in {low}..{high}, got {value!r}")
    if name == "same_answer" and (not isinstance(p["source"], str) or not p["source"]):
        raise ValueError(f"same_answer: source must be a unit id, got {p['source']!r}")
    if name == "duplicate_calendar" and not isinstance(p["conflict"], bool):
        raise ValueError("duplicate_calendar: conflict must be true or false")


def calendar_of(sb: Sandbox, api: str, unit_id: str, start: dt.date, end: dt.date) -> Any:
    """Return what ``unit_id``'s calendar answer for the nights ``start .. end - 1`` carries:
    the HSAPI NonAvailability list (without ``$id``) or the EscapiaNET DailyAvailability."""
    with sb._lock:
        if api == "hsapi":
            body = {"dateRange": {"startDate": start.isoformat(), "endDate": (end - ONE_DAY).isoformat()},
                    "nativePMSUnitID": unit_id}
            return hsapi.get_unit_non_availability(sb, body, {})
        return escapianet.daily_availability(sb, unit_id, start, end, sb.soap_fault_mode)


def apply(fault: Fault, sb: Sandbox, ctx: dict, answer: Answer) -> Answer | None:
    """Return ``answer`` with ``fault`` applied, or None when it cannot change it. ``ctx``
    holds the request's ``op``, ``unit`` and ``range`` (nights ``start .. end - 1`` asked)."""
    if answer.status != 200 or ctx.get("op") not in ("GetUnitNonAvailability", "UnitCalendarAvail",
                                                     "UnitCalendarAvailBatch"):
        return None
    if answer.api == "hsapi":
        try:
            items = json.loads(answer.body)
        except ValueError:
            return None
        changed = _hsapi(fault, sb, ctx, items) if isinstance(items, list) else None
        if changed is None:
            return None
        answer.body = json.dumps(changed, ensure_ascii=False).encode("utf-8")
        return answer
    try:
        root = ET.fromstring(answer.body)  # noqa: S314 - the sandbox's own answer
    except ET.ParseError:
        return None
    if not _soap(fault, sb, ctx, root):
        return None
    answer.body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return answer


def _counted(fault: Fault) -> bool:
    """Count one calendar answer for ``flaky``: True when it is the fault's every-th."""
    fault.seen += 1
    return fault.seen % fault.params["every"] == 0


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10])
    except (TypeError, ValueError):  # not a date (another fault's doing)
        return None


def _moved(value: Any, days: int) -> Any:
    day = _date(value)
    try:
        return value if day is None else (day + dt.timedelta(days=days)).isoformat()
    except OverflowError:
        return value


def _hsapi(fault: Fault, sb: Sandbox, ctx: dict, items: list) -> list | None:
    p = fault.params
    if fault.name == "same_answer":
        if ctx.get("unit") == p["source"] or "range" not in ctx:
            return None
        return hsapi.with_ids(calendar_of(sb, "hsapi", p["source"], *ctx["range"]))
    if fault.name == "shift":
        for item in items:
            dates = item.get("dateRange") if isinstance(item, dict) else None
            for key in ("startDate", "endDate") if isinstance(dates, dict) else ():
                dates[key] = _moved(dates.get(key), p["days"])
        return items
    if fault.name == "flaky":
        return [] if _counted(fault) else None
    return None  # short_string, short_coverage, duplicate_calendar: EscapiaNET only


def _soap(fault: Fault, sb: Sandbox, ctx: dict, root: ET.Element) -> bool:
    name, p, changed = fault.name, fault.params, False
    parents = {child: parent for parent in root.iter() for child in parent}
    calendars = [c for c in root.iter() if c.tag in CALENDARS and fault.unit in (None, c.get("UnitCode"))]
    for calendar in calendars:
        segments = calendar.findall(q("UnitCalendarAvailSegment"))
        if not segments:  # SummaryOnly: no calendar to be wrong about
            continue
        if name == "same_answer" and (calendar.get("UnitCode") == p["source"] or "range" not in ctx):
            continue
        if name == "flaky" and not _counted(fault):
            continue
        if name == "duplicate_calendar":
            twin, parent = copy.deepcopy(calendar), parents[calendar]
            for daily in twin.iter(q("DailyAvailability")) if p["conflict"] else ():
                daily.text = "A" * len(daily.text or "")
            parent.insert(list(parent).index(calendar) + 1, twin)
            changed = True
            continue
        for segment in segments:
            changed = _segment(name, p, sb, ctx, segment) or changed
    return changed


def _segment(name: str, p: dict[str, Any], sb: Sandbox, ctx: dict, segment: ET.Element) -> bool:
    daily = segment.find(q("DailyAvailability"))
    text = daily.text or "" if daily is not None else ""
    start = segment.get("StartDate")
    if name == "shift" and _date(start) is not None:
        segment.set("StartDate", _moved(start, p["days"]))
        if segment.get("EndDate") is not None:
            segment.set("EndDate", _moved(segment.get("EndDate"), p["days"]))
        return True
    if daily is None:
        return False
    if name == "same_answer":
        daily.text = calendar_of(sb, "soap", p["source"], *ctx["range"])
    elif name == "flaky":
        daily.text = "A" * len(text)
    elif name == "short_string" and len(text) > p["keep"]:
        daily.text = text[:p["keep"]]
    elif name == "short_coverage" and len(text) > p["days"] and _date(start) is not None:
        daily.text = text[:p["days"]]
        segment.set("EndDate", _moved(start, p["days"] - 1))
    else:
        return False
    return True
