"""Decoding EscapiaNET (SOAP) answers into the shared model.

Untrusted XML is parsed with defusedxml: a DTD, entity declarations (the "billion
laughs" bomb) and external references are refused outright. Everything we rely on that is
missing or malformed is a SourceError naming the operation; anything else is ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - only for the ParseError type and Element
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from escapia_ical.errors import AuthError, SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.model import BlockedRange, Unit, UnitCalendar
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.http import TransientAnswer

log = logging.getLogger(__name__)

EVRN = "http://www.escapia.com/EVRN/2007/02"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
KNOWN_CODES = "AUIO"  # available, booked, departure day (night free), first night (booked)
# OTA error types: 4 authentication, 6 authorization -> the account cannot work at all;
# 12 processing exception, or code 448 "system error" -> worth retrying.
AUTH_ERROR_TYPES = {"4", "6"}
TRANSIENT_ERROR_TYPES, TRANSIENT_ERROR_CODES = {"12"}, {"448"}
MAX_NESTING = 4  # RS elements inside RS elements read at most


def q(name: str) -> str:
    """Return the EVRN-qualified element name."""
    return f"{{{EVRN}}}{name}"


def parse_answer(body: bytes, operation: str) -> ET.Element:
    """Given a SOAP answer, return its innermost ``EVRN_<operation>RS`` element (the content
    service nests the batch answer in an outer one).

    Raise SourceError for XML that is malformed or carries a DTD/entities, for a SOAP
    Fault, or for a missing RS element; AuthError for an authentication/authorization
    Errors element at any level; TransientAnswer for one that says "try again".
    """
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise SourceError(f"{operation}: answer holds a DTD or entity declarations; refused") from None
    except ET.ParseError as exc:
        raise SourceError(f"{operation}: answer is not well-formed XML ({exc})") from None
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is not None:
        raise SourceError(f"{operation}: SOAP fault: {fault_text(fault)}")
    levels = [root.find(f"{{{SOAP_ENV}}}Body/{q(f'EVRN_{operation}RS')}")]
    if levels[0] is None:
        raise SourceError(f"{operation}: answer has no EVRN_{operation}RS element")
    while len(levels) < MAX_NESTING and (inner := levels[-1].find(q(f"EVRN_{operation}RS"))) is not None:
        levels.append(inner)
    errors = [e for level in levels for e in level.findall(f"{q('Errors')}/{q('Error')}")]
    if errors:  # the one that says most about the account first
        first = next((e for e in errors if e.get("Type", "") in AUTH_ERROR_TYPES), None) or next(
            (e for e in errors if _transient(e)), errors[0])
        kind, code = first.get("Type", ""), first.get("Code", "")
        text = " ".join((first.text or first.get("ShortText") or "").split())[:200]
        message = f"{operation}: Escapia error {code or '?'} (type {kind or '?'}): {text}"
        if kind in AUTH_ERROR_TYPES:
            raise AuthError(message)
        if _transient(first):
            raise TransientAnswer(message)
        raise SourceError(message)
    return levels[-1]


def _transient(error: ET.Element) -> bool:
    return error.get("Type", "") in TRANSIENT_ERROR_TYPES or error.get("Code", "") in TRANSIENT_ERROR_CODES


def is_true(value: str | None) -> bool:
    """An xs:boolean attribute that says yes."""
    return (value or "").strip().lower() in ("true", "1")


def units_truncated(answer: ET.Element) -> bool:
    """Given an EVRN_UnitSearchRS, say whether Escapia cut its unit list (``Units/@moredata``)."""
    return any(is_true(units.get("moredata")) for units in answer.iter(q("Units")))


def from_cache(answer: ET.Element) -> bool:
    """Given an EVRN_UnitCalendarAvailBatchRS, say whether it may come from Escapia's cache
    (``UnitCalendarAvails/@CachedData``)."""
    return any(is_true(avails.get("CachedData")) for avails in answer.iter(q("UnitCalendarAvails")))


def fault_text(fault: ET.Element) -> str:
    """Return a SOAP Fault's faultstring (or faultcode), on one short line."""
    text = fault.findtext("faultstring") or fault.findtext("faultcode") or "no faultstring"
    return " ".join(text.split())[:200]


def fault_of(body: bytes) -> str | None:
    """Return the faultstring of a SOAP Fault body (an HTTP 500 answer), if it is one."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, ET.ParseError):
        return None
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    return fault_text(fault) if fault is not None else None


def parse_units(answer: ET.Element) -> list[Unit]:
    """Given an EVRN_UnitSearchRS, return its units. Units without a code are skipped."""
    units = []
    for element in answer.iter(q("Unit")):
        unit = _unit_of(element, "UnitSearch")
        if unit:
            units.append(unit)
    return units


@dataclass
class Calendar:
    """One unit's calendar as EscapiaNET sent it."""

    unit: Unit
    segments: list[ET.Element]
    last_updated: str = ""  # UnitCalendarAvail/@LastUpdated as sent (compared, never parsed)


def parse_batch(answer: ET.Element) -> list[Calendar]:
    """Given an EVRN_UnitCalendarAvailBatchRS, return the calendar of every unit in it."""
    calendars = []
    for element in answer.iter(q("UnitCalendarAvail")):
        unit = _unit_of(element, "UnitCalendarAvailBatch")
        if unit:
            calendars.append(Calendar(unit, element.findall(q("UnitCalendarAvailSegment")),
                                      (element.get("LastUpdated") or "").strip()))
    return calendars


def parse_unit_calendar(answer: ET.Element, unit_code: str) -> list[ET.Element]:
    """Given an EVRN_UnitCalendarAvailRS, return the segments of ``unit_code``."""
    holders = answer.findall(q("UnitCalendarAvailSegments"))
    mine = [h for h in holders if h.get("UnitCode") in (None, unit_code)]
    if not mine:
        raise SourceError(f"UnitCalendarAvail: answer holds no calendar for unit {unit_code!r}")
    if len(mine) > 1:  # which one is right cannot be told: never resolved by order
        raise SourceError(f"UnitCalendarAvail: {len(mine)} calendars for unit {unit_code!r} in one "
                          "answer; none is trusted")
    return mine[0].findall(q("UnitCalendarAvailSegment"))


class DailyDecoder:
    """Turns DailyAvailability strings into blocked ranges, for one account and run.

    Character i is the night StartDate + i days. Nights whose character is in
    ``blocked_codes`` are blocked, and so is any character we do not know (never
    under-block); each unknown character is reported once per run. A blocked run is split
    before every ``O`` (the first night of a stay), so back-to-back stays stay separate.
    """

    def __init__(self, account: str, blocked_codes: str):
        self.account = account
        self.blocked_codes = blocked_codes
        self.reported: set[str] = set()
        self.end_mismatch = False  # reported once per run
        self._lock = threading.Lock()  # units are decoded by several threads

    def _first_report(self, code: str) -> bool:
        with self._lock:
            first = code not in self.reported
            self.reported.add(code)
            return first
    def calendar(self, segments: list[ET.Element], where: str) -> UnitCalendar:
        """Return the blocked ranges of a unit's segments and the nights they cover.

        Raise SourceError if a segment lacks its StartDate or DailyAvailability, if its
        string is shorter than its StartDate..EndDate says (a cut-off answer: what it left
        out would read as unknown, and the rest cannot be trusted either), or if two
        segments disagree about a night they both cover.
        """
        ranges: list[BlockedRange] = []
        covered: list[Span] = []
        decoded: list[tuple[int, Span, list[Span]]] = []  # segment index, its nights, the blocked ones
        for index, segment in enumerate(segments):
            what = f"{where}: segment {index}"
            start = parse_api_date(segment.get("StartDate"), f"{what} StartDate")
            daily = "".join((segment.findtext(q("DailyAvailability")) or "").split())
            if not daily:
                # Read as "no nights blocked", it would blank the whole calendar.
                raise SourceError(f"{what}: no DailyAvailability")
            if len(daily) > (dt.date.max - start).days:  # the checkout must be a date too
                raise SourceError(f"{what}: a {len(daily)}-day string from {start} runs past year 9999")
            self._check_end(segment.get("EndDate"), start, daily, what)
            found = self._decode(start, daily, where)
            span = (start, start + dt.timedelta(days=len(daily)))
            blocked = spans.normalize((r.start, r.end) for r in found)
            for other, other_span, other_blocked in decoded:
                both = spans.intersect([span], [other_span])
                if both and spans.intersect(blocked, both) != spans.intersect(other_blocked, both):
                    raise SourceError(f"{where}: segments {other} and {index} disagree about "
                                      f"{spans.describe(both)}; neither is trusted")
            decoded.append((index, span, blocked))
            ranges.extend(found)
            covered.append(span)
        return UnitCalendar(tuple(ranges), tuple(spans.normalize(covered)))

    def _decode(self, start: dt.date, daily: str, where: str) -> list[BlockedRange]:
        ranges, run_start = [], None
        for offset, code in enumerate(daily):
            night = start + dt.timedelta(days=offset)
            if code not in KNOWN_CODES and self._first_report(code):
                log.warning("%s: unknown DailyAvailability character %r (first seen at %s, %s); "
                            "treating it as blocked", self.account, code, where, night)
            if code in self.blocked_codes or code not in KNOWN_CODES:
                if run_start is not None and code == "O":
                    ranges.append(BlockedRange(run_start, night))
                    run_start = night
                elif run_start is None:
                    run_start = night
            elif run_start is not None:
                ranges.append(BlockedRange(run_start, night))
                run_start = None
        if run_start is not None:
            ranges.append(BlockedRange(run_start, start + dt.timedelta(days=len(daily))))
        return ranges

    def _check_end(self, end_value: str | None, start: dt.date, daily: str, what: str) -> None:
        """Raise SourceError if the string is shorter than StartDate..EndDate in either
        reading of EndDate (the last night, or the day after it); report once per run an
        EndDate that says less than the string (trusted: it is what Escapia sent)."""
        if end_value is None:
            return
        try:
            end = parse_api_date(end_value, f"{what} EndDate")
        except SourceError as exc:
            log.warning("%s: %s; using the string's length", self.account, exc)
            return
        stated = (end - start).days
        if len(daily) < stated:
            raise SourceError(f"{what}: the DailyAvailability string has {len(daily)} days but StartDate "
                              f"{start} to EndDate {end} spans {stated}: the answer is cut short")
        if len(daily) > stated + 1 and not self.end_mismatch:
            self.end_mismatch = True
            log.warning("%s: %s: EndDate %s but the %d-day string ends %s; trusting the string",
                        self.account, what, end, len(daily), start + dt.timedelta(days=len(daily) - 1))


def _unit_of(element: ET.Element, operation: str) -> Unit | None:
    code = (element.get("UnitCode") or "").strip()
    if not code:
        log.warning("%s: skipping a unit without UnitCode", operation)
        return None
    name = next((n.strip() for n in (element.get("UnitName"), element.get("UnitHeadline"))
                 if n and n.strip()), code)
    return Unit(id=code, name=name, code=code)
