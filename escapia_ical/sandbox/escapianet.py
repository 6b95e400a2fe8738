"""EscapiaNET (SOAP 1.1, document/literal) over the same data as the HSAPI fake.

``POST {base_url}/EVRNService.svc`` serves UnitSearch, UnitCalendarAvail and
UnitCalendarAvailBatch; ``POST {base_url}/EVRNContentService.svc`` serves UnitCalendarAvailBatch.
The operation comes from the ``SOAPAction`` header (``UnitSearch``, ``"UnitSearch"`` or a URI
ending in ``/UnitSearch``). Order of checks: method (405) -> ``latency`` sleep -> Content-Type
``text/xml`` (415) -> SOAPAction served here (500 Fault) -> request
XML, parsed with defusedxml (500 Fault when malformed, not an Envelope/Body or not
``EVRN_<Op>RQ``) -> ``Version`` (Errors) -> POS credentials (Errors 4/497) ->
``soap_fault_mode`` "errors" -> the operation (its own Errors; UnitCalendarAvail: injected unit
fault -> HTTP status + Fault) -> ``soap_fault_mode`` "malformed"/"bomb" replace the body; then
the injected faults (:mod:`.faults`) change the answer.

Unit codes are the HSAPI nativePMSIDs. ``DailyAvailability`` holds one character per night from
``StartDate``: a blocked night is ``O`` when a stay/hold starts that day, else ``U``; a free night
is ``I`` when a stay/hold departs that day, else ``A``. Sandbox choices the contract leaves open:
``UpdatedAfter`` is compared inclusively (``LastUpdated >= UpdatedAfter``, whole seconds; a naive
dateTime is UTC); ``SummaryOnly="true"`` drops the segments; ``ShowHold`` is ignored (holds are
always blocked); a unit with an injected unit fault is left out of the batch (one fault use).
"""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET  # noqa: S405 - builds responses only; requests go through defusedxml
from collections.abc import Mapping
from typing import TYPE_CHECKING

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from escapia_ical.sandbox.data import ONE_DAY, PMCID, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN_NS = "http://www.escapia.com/EVRN/2007/02"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CONTENT_TYPE = "text/xml; charset=utf-8"
VERSION = "1.030"
SANDBOX_SOAP_USER = "sandbox-user"
SANDBOX_SOAP_PASSWORD = "sandbox-password"
SANDBOX_PMC_CODE = PMCID
BATCH_DAYS = 1095  # UnitCalendarAvailBatch covers today .. today + 1094 (inclusive)
SOAP_OPERATIONS = ("UnitSearch", "UnitCalendarAvail", "UnitCalendarAvailBatch")
ENDPOINTS = {"/EVRNService.svc": SOAP_OPERATIONS, "/EVRNContentService.svc": ("UnitCalendarAvailBatch",)}
SOAP_FAULT_MODES = ("errors", "malformed", "bomb", "bad_chars", "no_start_date", "empty_units")


class SoapFault(Exception):
    """Answered with HTTP ``status`` and a SOAP Fault body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class EvrnError(Exception):
    """Answered with HTTP 200 and ``<Errors><Error Type Code ShortText>text</Error></Errors>``."""

    def __init__(self, type_: int, code: int, short: str, text: str) -> None:
        super().__init__(text)
        self.type, self.code, self.short, self.text = type_, code, short, text


def q(tag: str) -> str:
    """A request element's qualified name. (Responses are built from plain names under a root
    carrying ``xmlns``, as ElementTree cannot serialize unprefixed attributes with a default namespace.)"""
    return f"{{{EVRN_NS}}}{tag}"


def envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}"><s:Body>'
            f"{inner}</s:Body></s:Envelope>").encode()


def fault_body(code: str, message: str) -> bytes:
    faultcode, faultstring = ET.Element("faultcode"), ET.Element("faultstring", {XML_LANG: "en-US"})
    faultcode.text, faultstring.text = code, message
    parts = (ET.tostring(e, encoding="unicode") for e in (faultcode, faultstring))
    return envelope(f"<s:Fault>{''.join(parts)}</s:Fault>")


def response_body(op: str, payload: list[ET.Element] | None = None, error: EvrnError | None = None) -> bytes:
    rs = ET.Element(f"EVRN_{op}RS", {"xmlns": EVRN_NS, "Version": VERSION,
                                     "TimeStamp": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")})
    if error is not None:
        errors = ET.SubElement(rs, "Errors")
        item = ET.SubElement(errors, "Error", {"Type": str(error.type), "Code": str(error.code),
                                                  "ShortText": error.short})
        item.text = error.text
    else:
        ET.SubElement(rs, "Success")
        rs.extend(payload or [])
    return envelope(ET.tostring(rs, encoding="unicode"))


def bomb_body(op: str) -> bytes:
    """A billion-laughs document: ten nested entities, each ten of the one below (~10**9 'lol')."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE s:Envelope [{entities}]>'
            f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body><EVRN_{op}RS xmlns="{EVRN_NS}" Version="{VERSION}">'
            f'<Success/><Warnings><Warning Type="1">&lol9;</Warning></Warnings></EVRN_{op}RS>'
            "</s:Body></s:Envelope>").encode()


def soap_action(value: str | None) -> str:
    """``UnitSearch``, ``"UnitSearch"`` and ``http://.../UnitSearch`` all name UnitSearch."""
    return (value or "").strip().strip('"').strip().rsplit("/", 1)[-1]


def parse_request(raw: bytes, op: str) -> ET.Element:
    """The ``EVRN_<op>RQ`` element of a SOAP 1.1 envelope, or a Client fault."""
    try:
        root = SafeET.fromstring(raw)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise SoapFault(500, "s:Client", f"malformed request XML: {exc}") from None
    body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    if body is None:
        raise SoapFault(500, "s:Client", "request is not a SOAP 1.1 Envelope with a Body")
    children = list(body)
    if len(children) != 1 or children[0].tag != q(f"EVRN_{op}RQ"):
        got = children[0].tag if children else "nothing"
        raise SoapFault(500, "s:Client", f"SOAPAction {op} expects one {q(f'EVRN_{op}RQ')} in Body, "
                                         f"got {got}")
    return children[0]


def parse_date(value: str | None) -> dt.date | None:
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value or "", fmt).date()
        except ValueError:
            pass
    return None


def parse_datetime(value: str | None) -> dt.datetime | None:
    if value is None or not value.strip():
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EvrnError(3, 320, "Invalid value", f"UpdatedAfter is not an xs:dateTime: {value!r}") from None
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


def daily_availability(sb: Sandbox, unit_id: str, start: dt.date, end: dt.date, mode: str | None) -> str:
    """One character per night ``start <= d < end`` (see the module docstring)."""
    blocking = sb.data.blocking_spans(unit_id)  # stays, holds and work orders alike
    blocked = sb.data.blocked_nights(unit_id, start, end)
    arrivals, departures = {s for s, _ in blocking}, {e for _, e in blocking}
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
            mode: str | None) -> ET.Element:
    seg = ET.SubElement(parent, "UnitCalendarAvailSegment")
    if mode != "no_start_date":
        seg.set("StartDate", start.isoformat())
    seg.set("EndDate", (end - ONE_DAY).isoformat())
    ET.SubElement(seg, "DailyAvailability").text = daily_availability(sb, unit_id, start, end, mode)
    return seg


def last_updated(sb: Sandbox) -> dict[str, dt.datetime]:
    """Per unit: the time of its latest reservation change, else the sandbox's start."""
    latest: dict[str, dt.datetime] = {}
    for change in sb.data.changes:
        unit = sb.data.reservations[change.reservation_id].unit_id
        latest[unit] = max(latest.get(unit, change.time), change.time)
    return {u: latest.get(u, sb.started_at) for u in sb.data.units}


# -- operations: (sandbox, request element, mode, ctx) -> payload; called with the lock held --
def unit_search(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    raw, limit = rq.get("MaxResponses"), None
    if raw is not None and raw.strip():
        limit = int(raw) if raw.strip().isdigit() else 0
        if limit < 1:
            raise EvrnError(3, 320, "Invalid value", f"MaxResponses must be a positive integer, got {raw!r}")
    units = ET.Element("Units")
    if mode != "empty_units":
        for u in sb.data.search_units()[:limit]:
            ET.SubElement(units, "Unit", {"UnitCode": u.id, "UnitName": u.name,
                                             "UnitHeadline": u.headline})
    return [units]


def unit_calendar_avail(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    code = ctx["unit"]
    if not code:
        raise EvrnError(10, 321, "Required field missing", "UnitRef/@UnitCode is required")
    fault = sb._take_fault(sb._unit_faults, code)
    if fault is not None:
        raise SoapFault(fault[0], "s:Server", "Internal error")
    dates = rq.find(q("CalendarDateRange"))
    start = parse_date(dates.get("Start")) if dates is not None else None
    last = parse_date(dates.get("End")) if dates is not None else None
    if start is None or last is None or last < start:
        raise EvrnError(10, 321, "Required field missing",
                        "CalendarDateRange needs Start <= End, each MM/DD/YYYY or YYYY-MM-DD")
    unit = sb.data.units.get(code)
    if unit is None:
        raise EvrnError(3, 392, "Invalid unit code", f"Unit '{code}' not found")
    ctx["range"] = (start, last + ONE_DAY)  # the nights asked (see .wrong_answers)
    segments = ET.Element("UnitCalendarAvailSegments", {"UnitCode": unit.id, "UnitName": unit.name,
                                                            "PropertyManagerCode": PMCID})
    ET.SubElement(segment(sb, segments, unit.id, start, last + ONE_DAY, mode), "StayRequirements")
    return [segments]


def unit_calendar_avail_batch(sb: Sandbox, rq: ET.Element, mode: str | None, ctx: dict) -> list[ET.Element]:
    holder = rq.find(q("CalenadAvails"))
    items = holder.findall(q("CalendarAvail")) if holder is not None else []
    if not items:
        raise EvrnError(10, 321, "Required field missing", "CalenadAvails/CalendarAvail is required")
    stamps, selected = last_updated(sb), set()
    for item in items:
        pmc = item.get("PropertyManagerCode")
        if pmc not in (None, "", PMCID):
            raise EvrnError(6, 497, "Not authorized for property manager",
                            f"Property manager '{pmc}' is not available to this RequestorID")
        after = parse_datetime(item.get("UpdatedAfter"))
        selected |= {u for u, stamp in stamps.items() if after is None or stamp >= after}
    avails = ET.Element("UnitCalendarAvails")
    if mode == "empty_units":
        return [avails]
    summary_only = (rq.get("SummaryOnly") or "").strip().lower() in ("true", "1")
    start, end = ctx["range"] = sb.batch_range()
    for unit in sb.data.search_units():
        if unit.id not in selected or sb._take_fault(sb._unit_faults, unit.id) is not None:
            continue
        avail = ET.SubElement(avails, "UnitCalendarAvail", {
            "UnitCode": unit.id, "UnitName": unit.name, "PropertyManagerCode": PMCID,
            "LastUpdated": stamps[unit.id].strftime("%Y-%m-%dT%H:%M:%SZ")})
        if not summary_only:
            segment(sb, avail, unit.id, start, end, mode)
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
    mode = sb.soap_fault_mode
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
            body = response_body(op, OPERATIONS[op](sb, rq, mode, ctx))
    except EvrnError as error:
        return 200, response_body(op, error=error), {}
    if mode == "malformed":
        text = body.decode()
        body = text[: len(text) // 2].encode()
    elif mode == "bomb":
        body = bomb_body(op)
    return 200, body, {}
