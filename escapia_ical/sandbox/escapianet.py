"""EscapiaNET (SOAP 1.1, document/literal) over the same data as the HSAPI fake.

``POST {base_url}/EVRNService.svc`` serves UnitSearch, UnitCalendarAvail and
UnitCalendarAvailBatch (answered flat); ``POST {base_url}/EVRNContentService.svc`` serves
UnitCalendarAvailBatch, nested as the published artefacts show:
``Body/EVRN_UnitCalendarAvailBatchRS/EVRN_UnitCalendarAvailBatchRS/{Success|Errors|...}`` (its
Errors, authentication failures included, in the inner element). The operation comes from the
``SOAPAction`` header (``UnitSearch``, ``"UnitSearch"`` or a URI ending in ``/UnitSearch``).
Order of checks: method (405) -> ``latency`` sleep -> Content-Type ``text/xml`` (415) ->
SOAPAction served here (500 Fault) -> request XML, parsed with defusedxml (500 Fault when
malformed, not an Envelope/Body or not ``EVRN_<Op>RQ``) -> ``Version`` (Errors) -> POS
credentials (Errors 4/497) -> ``soap_fault_mode`` "errors" -> the operation (its own Errors;
UnitCalendarAvail: injected unit fault -> HTTP status + Fault) -> ``soap_fault_mode``
"malformed"/"bomb" replace the body; then the injected faults (:mod:`.faults`) change the answer.

Unit codes are the HSAPI nativePMSIDs. ``DailyAvailability`` holds one character per night from
``StartDate``: a blocked night is ``O`` when a stay/hold starts that day, else ``U``; a free night
is ``I`` when a stay/hold departs that day, else ``A``. Holds (hold type not "None") are shown
only when asked: ``<ShowHolds>true</ShowHolds>`` (UnitCalendarAvail) or ``@ShowHold="true"``
(the batch). A calendar covers at most ``Sandbox.calendar_max_days`` nights from its start; the
batch's ``CalendarAvail/CalendarDateRange`` (Start, End = the last night) says which, and without
one the batch covers today onwards. The sandbox's own choices are in the package docstring's
"Invented here" table.
"""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET  # noqa: S405 - builds responses only; requests go through defusedxml
from collections.abc import Mapping
from typing import TYPE_CHECKING

from escapia_ical.sandbox.data import ONE_DAY, PMCID
from escapia_ical.sandbox.soap import (  # noqa: F401 - fault_body, bomb_body, q: used by .faults, .fault_bodies
    EvrnError,
    SoapFault,
    bomb_body,
    fault_body,
    flag,
    parse_date,
    parse_datetime,
    parse_request,
    q,
    response_body,
    soap_action,
)

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.data import Reservation
    from escapia_ical.sandbox.server import Sandbox

CONTENT_TYPE = "text/xml; charset=utf-8"
SANDBOX_SOAP_USER = "sandbox-user"
SANDBOX_SOAP_PASSWORD = "sandbox-password"
SANDBOX_PMC_CODE = PMCID
NEVER_CHANGED = 30  # a unit without changes: LastUpdated this many days before today, 00:00Z
CALENDAR_MAX_DAYS = 764  # nights one calendar covers at most (other clients' cap)
SOAP_OPERATIONS = ("UnitSearch", "UnitCalendarAvail", "UnitCalendarAvailBatch")
ENDPOINTS = {"/EVRNService.svc": SOAP_OPERATIONS, "/EVRNContentService.svc": ("UnitCalendarAvailBatch",)}
NESTED = {("/EVRNContentService.svc", "UnitCalendarAvailBatch")}  # answers nested in an outer RS
SOAP_FAULT_MODES = ("errors", "malformed", "bomb", "bad_chars", "no_start_date", "empty_units")


def shown(sb: Sandbox, unit_id: str, holds: bool) -> list[Reservation]:
    """The unit's active reservations, holds only if ``holds``."""
    return [r for r in sb.data.active(unit_id) if holds or not r.is_hold]


def daily_availability(sb: Sandbox, unit_id: str, start: dt.date, end: dt.date, mode: str | None,
                       holds: bool = True) -> str:
    """One character per night ``start <= d < end`` (see the module docstring)."""
    # Work orders show whether holds are asked for or not (invented: see the package docstring).
    spans = [(r.start, r.end) for r in shown(sb, unit_id, holds)]
    spans += [w.nights for w in sb.data.blocking_work_orders(unit_id) if w.nights]
    contract = sb.data.contract_spans(unit_id)  # blocked (U) without arriving or departing
    blocked = {s + i * ONE_DAY for s, e in spans + contract for i in range((e - s).days)}
    arrivals, departures = {s for s, _ in spans}, {e for _, e in spans}
    chars = []
    for i in range((end - start).days):
        d = start + i * ONE_DAY
        if d in blocked:
            chars.append("O" if d in arrivals else "U")
        else:
            chars.append("I" if d in departures else "A")
    text = "".join(chars)
    return text.replace("U", "X", 1) if mode == "bad_chars" else text


def segment(sb: Sandbox, parent: ET.Element, unit_id: str, start: dt.date, end: dt.date,
            mode: str | None, holds: bool) -> ET.Element:
    seg = ET.SubElement(parent, "UnitCalendarAvailSegment")
    if mode != "no_start_date":
        seg.set("StartDate", start.isoformat())
    seg.set("EndDate", (end - ONE_DAY).isoformat())
    ET.SubElement(seg, "DailyAvailability").text = daily_availability(sb, unit_id, start, end, mode, holds)
    return seg


def last_updated(sb: Sandbox) -> dict[str, dt.datetime]:
    """Per unit: the time of its last reservation change (whole seconds), else ``NEVER_CHANGED``
    days before the sandbox's today. The last one recorded, not the latest time: a large seed
    stamps its changes a second apart and may reach past the wall clock, and a change made
    later must still move the stamp."""
    latest: dict[str, dt.datetime] = {}
    for change in sb.data.changes:
        latest[sb.data.reservations[change.reservation_id].unit_id] = change.time
    never = dt.datetime.combine(sb.today - NEVER_CHANGED * ONE_DAY, dt.time(), tzinfo=dt.UTC)
    return {u: latest.get(u, never).replace(microsecond=0) for u in sb.data.units}


def nights_asked(holder: ET.Element | None, default: tuple[dt.date, dt.date] | None,
                 max_days: int) -> tuple[dt.date, dt.date]:
    """``(start, end exclusive)`` of a ``CalendarDateRange`` (End = the last night), cut to
    ``max_days`` nights; ``default`` when there is none (else Errors)."""
    dates = holder.find(q("CalendarDateRange")) if holder is not None else None
    if dates is None and default is not None:
        start, end = default
    else:
        start = parse_date(dates.get("Start")) if dates is not None else None
        last = parse_date(dates.get("End")) if dates is not None else None
        if start is None or last is None or last < start:
            raise EvrnError(10, 321, "Required field missing",
                            "CalendarDateRange needs Start <= End, each MM/DD/YYYY or YYYY-MM-DD")
        end = last + ONE_DAY
    return start, min(end, start + max_days * ONE_DAY)


# -- operations: (sandbox, request element, mode, ctx) -> payload; called with the lock held --
def unit_search(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    raw, limit = rq.get("MaxResponses"), None
    if raw is not None and raw.strip():
        limit = int(raw) if raw.strip().isdigit() else 0
        if limit < 1:
            raise EvrnError(3, 320, "Invalid value", f"MaxResponses must be a positive integer, got {raw!r}")
    if sb.unit_list_cap is not None:
        limit = min(limit or sb.unit_list_cap, sb.unit_list_cap)
    units = ET.Element("Units")
    if mode != "empty_units":
        found = sb.data.search_units()
        if limit is not None and len(found) > limit:
            units.set("moredata", "true")
        summary = (rq.get("SendUnitSummary") or "true").strip().lower() not in ("false", "0")
        for u in found[:limit]:
            unit = ET.SubElement(units, "Unit", {"UnitCode": u.id, "UnitName": u.name,
                                                 "UnitHeadline": u.headline})
            if summary:  # invented content: only its presence matters
                ET.SubElement(ET.SubElement(unit, "UnitSummary"), "Description").text = u.headline or u.name
    return [units]


def unit_calendar_avail(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    code = ctx["unit"]
    if not code:
        raise EvrnError(10, 321, "Required field missing", "UnitRef/@UnitCode is required")
    fault = sb._take_fault(sb._unit_faults, code)
    if fault is not None:
        raise SoapFault(fault[0], "s:Server", "Internal error")
    start, end = nights_asked(rq, None, sb.calendar_max_days)
    unit = sb.data.units.get(code)
    if unit is None:
        raise EvrnError(3, 392, "Invalid unit code", f"Unit '{code}' not found")
    ctx["range"] = (start, end)  # the nights answered (see .wrong_answers)
    holds = flag(rq.findtext(q("ShowHolds")))
    segments = ET.Element("UnitCalendarAvailSegments", {"UnitCode": unit.id, "UnitName": unit.name,
                                                            "PropertyManagerCode": PMCID})
    ET.SubElement(segment(sb, segments, unit.id, start, end, mode, holds), "StayRequirements")
    return [segments]


def unit_calendar_avail_batch(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    holder = rq.find(q("CalenadAvails"))
    items = holder.findall(q("CalendarAvail")) if holder is not None else []
    if not items:
        raise EvrnError(10, 321, "Required field missing", "CalenadAvails/CalendarAvail is required")
    stamps, chosen = last_updated(sb), {}  # unit -> the nights its calendar covers
    for item in items:
        pmc = item.get("PropertyManagerCode")
        if pmc not in (None, "", PMCID):
            raise EvrnError(6, 497, "Not authorized for property manager",
                            f"Property manager '{pmc}' is not available to this RequestorID")
        after = parse_datetime(item.get("UpdatedAfter"))
        nights = nights_asked(item, sb.batch_range(), sb.calendar_max_days)
        for unit, stamp in stamps.items():
            if after is None or stamp >= after:
                chosen.setdefault(unit, nights)
    if sb.cached_batch and sb._last_batch is not None:  # repeats the previous answer
        avails = ET.fromstring(sb._last_batch)  # noqa: S314 - our own answer
        avails.set("CachedData", "true")
        return [avails]
    avails = ET.Element("UnitCalendarAvails", {"CachedData": "false"})
    if mode == "empty_units":
        return [avails]
    summary_only, holds = flag(rq.get("SummaryOnly")), flag(rq.get("ShowHold"))
    ranges = set()
    for unit in sb.data.search_units():
        faulty = not summary_only and sb._take_fault(sb._unit_faults, unit.id) is not None
        if unit.id not in chosen or faulty:
            continue
        avail = ET.SubElement(avails, "UnitCalendarAvail", {
            "UnitCode": unit.id, "UnitName": unit.name, "PropertyManagerCode": PMCID,
            "LastUpdated": stamps[unit.id].strftime("%Y-%m-%dT%H:%M:%SZ")})
        if not summary_only:
            segment(sb, avail, unit.id, *chosen[unit.id], mode, holds)
            ranges.add(chosen[unit.id])
    if len(ranges) == 1:
        ctx["range"] = ranges.pop()
    sb._last_batch = ET.tostring(avails)
    return [avails]


OPERATIONS = {"UnitSearch": unit_search, "UnitCalendarAvail": unit_calendar_avail,
              "UnitCalendarAvailBatch": unit_calendar_avail_batch}


def serve(sb: Sandbox, method: str, path: str, raw: bytes, headers: Mapping[str, str],
          ctx: dict) -> tuple[int, bytes, dict]:
    """Answer one EscapiaNET request: ``(HTTP status, body, extra headers)``; fills ``ctx``."""
    try:
        return _serve(sb, method, path, raw, headers, ctx)
    except SoapFault as fault:
        return fault.status, fault_body(fault.code, fault.message), fault.headers


def _serve(sb: Sandbox, method: str, path: str, raw: bytes, headers: Mapping[str, str],
           ctx: dict) -> tuple[int, bytes, dict]:
    op = soap_action(headers.get("SOAPAction"))
    ctx["op"] = op or None
    if method != "POST":
        raise SoapFault(405, "s:Client", f"{path} accepts POST only", {"Allow": "POST"})
    if sb.latency:
        time.sleep(sb.latency)
    content_type = headers.get("Content-Type") or ""
    if not content_type.strip().lower().startswith("text/xml"):
        raise SoapFault(415, "s:Client", f"Cannot process the message because the content type "
                                         f"{content_type!r} was not the expected type '{CONTENT_TYPE}'")
    if op not in ENDPOINTS[path]:
        raise SoapFault(500, "s:Client", f"The message with Action '{op}' cannot be processed at {path} "
                                         "(ActionNotSupported)")
    rq = parse_request(raw, op)
    ref = rq.find(q("UnitRef"))
    ctx["unit"] = ref.get("UnitCode") if ref is not None else None
    with sb._lock:
        sb.soap_requests.append({"op": op, "path": path, "request": raw})
    mode, nested = sb.soap_fault_mode, (path, op) in NESTED
    try:
        if not (rq.get("Version") or "").strip():
            raise EvrnError(10, 321, "Required field missing", "Version is required")
        requestor = rq.find(f"{q('POS')}/{q('Source')}/{q('RequestorID')}")
        user = requestor.get("ID") if requestor is not None else None
        password = requestor.get("MessagePassword") if requestor is not None else None
        if (user, password) != (SANDBOX_SOAP_USER, SANDBOX_SOAP_PASSWORD):
            raise EvrnError(4, 497, "Authentication failed", "Invalid RequestorID or MessagePassword")
        if mode == "errors":
            raise EvrnError(12, 448, "System error", "Injected failure (soap_fault_mode 'errors')")
        with sb._lock:
            body = response_body(op, OPERATIONS[op](sb, rq, mode, ctx), nested=nested)
    except EvrnError as error:
        return 200, response_body(op, error=error, nested=nested), {}
    if mode == "malformed":
        text = body.decode()
        body = text[: len(text) // 2].encode()
    elif mode == "bomb":
        body = bomb_body(op)
    return 200, body, {}
