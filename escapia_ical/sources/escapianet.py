"""EscapiaNET, Escapia's SOAP 1.1 API: units and their DailyAvailability calendars.

Two ways to read calendars, per account (``calendar_mode``):
- ``batch`` (default): ``UnitSearch`` for the units, then one ``UnitCalendarAvailBatch``
  call on the content service for all their calendars: two requests per sync whatever the
  number of units. Discovery stays with UnitSearch so that a unit the batch leaves out is
  an error for that unit, not a feed that silently stops updating. The batch calendar's
  range is Escapia's, not ours (it starts today).
- ``per_unit``: ``UnitSearch``, then ``UnitCalendarAvail`` per unit over the feed window.
Each mode's *other* operation is the independent view the publish policy asks when a
calendar would free nights (``explain``): a batch loss is checked with UnitCalendarAvail
for that unit, a per-unit loss against one batch per run.
Request XML is built with ElementTree (values escaped); answers are parsed with defusedxml.
"""

from __future__ import annotations

import datetime as dt
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - builds our own requests; answers use defusedxml

from escapia_ical.config import EscapianetAccount
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.model import Explanation, FeedWindow, Unit, UnitCalendar
from escapia_ical.sources import Notes
from escapia_ical.sources.escapianet_decode import (
    EVRN,
    SOAP_ENV,
    Calendar,
    DailyDecoder,
    fault_of,
    parse_answer,
    parse_batch,
    parse_unit_calendar,
    parse_units,
    q,
)
from escapia_ical.sources.http import HttpClient, HttpResult, HttpStatusError, Sleep

VERSION = "1.030"
MAX_UNITS = 100_000
ET.register_namespace("soap", SOAP_ENV)
ET.register_namespace("evrn", EVRN)


class EscapianetSource:
    """Reads one EscapiaNET account."""

    def __init__(self, account: EscapianetAccount, *, sleep: Sleep | None = None):
        self.account = account
        self.http = HttpClient(account.http, sleep=sleep)
        self.requests_by_operation = self.http.requests_by_operation
        self.responses_by_status = self.http.responses_by_status
        self.notes = Notes()
        self.decoder = DailyDecoder(account.name, account.blocked_codes)
        self._batch: dict[str, list[Calendar]] | None = None  # unit code -> its calendars in the batch
        self._batch_error: SourceError | None = None
        self._batch_lock = threading.Lock()

    # -- the Source interface -------------------------------------------------------

    def list_units(self) -> list[Unit]:
        """Return every distributed unit (UnitSearch)."""
        answer = self._call("EVRNService.svc", "UnitSearch", self._unit_search)
        return list({u.id: u for u in parse_units(answer)}.values())

    def calendar(self, unit: Unit, window: FeedWindow) -> UnitCalendar:
        """Return the unit's blocked ranges (half-open, one per stay or hold) and the nights
        its segments cover: from the run's one batch, or from a UnitCalendarAvail over the
        window. Raise SourceError if the answer holds no calendar, or two, for the unit."""
        if self.account.calendar_mode == "batch":
            segments = self._batch_segments(unit)
        else:
            segments = self._unit_segments(unit, window.start, window.end)
        answer = self._decode(segments, unit)
        # A calendar dump may reach past the window (the batch spans 3 years): expected,
        # so what lies wholly outside is dropped here.
        return UnitCalendar(tuple(r for r in answer.ranges if r.end > window.start and r.start < window.end),
                            answer.covered)

    def explain(self, unit: Unit, nights: list[Span]) -> Explanation:
        """Return which of ``nights`` the calendar operation this account does not read
        calendars with shows free and which booked (nights it does not cover are neither)."""
        if self.account.calendar_mode == "batch":
            view = "UnitCalendarAvail"
            answer = self._decode(self._unit_segments(unit, nights[0][0], nights[-1][1]), unit)
        else:
            view = "UnitCalendarAvailBatch"
            answer = self._decode(self._batch_segments(unit), unit)
        covered = spans.intersect(nights, answer.covered)
        booked = spans.intersect(covered, ((r.start, r.end) for r in answer.ranges))
        return Explanation(view, tuple(spans.subtract(covered, booked)), tuple(booked))

    # -- requests ---------------------------------------------------------------------

    def _decode(self, segments: list[ET.Element], unit: Unit) -> UnitCalendar:
        where = f"unit {unit.id!r}"
        if not segments:
            raise SourceError(f"{where}: the calendar has no segments")
        return self.decoder.calendar(segments, where)

    def _unit_segments(self, unit: Unit, start: dt.date, end: dt.date) -> list[ET.Element]:
        answer = self._call("EVRNService.svc", "UnitCalendarAvail",
                            lambda request: self._unit_calendar(request, unit.id, start, end))
        return parse_unit_calendar(answer, unit.id)

    def _batch_segments(self, unit: Unit) -> list[ET.Element]:
        """Return the unit's segments from this run's batch, fetched once for all units (by
        whichever thread needs it first). A failed batch is remembered too: every unit then
        fails with its error at once instead of asking (and waiting) again."""
        with self._batch_lock:
            if self._batch_error is not None:
                raise self._batch_error
            if self._batch is None:
                try:
                    answer = self._call("EVRNContentService.svc", "UnitCalendarAvailBatch",
                                        self._batch_request)
                except SourceError as exc:
                    self._batch_error = exc
                    raise
                self._batch = {}
                for calendar in parse_batch(answer):
                    self._batch.setdefault(calendar.unit.id, []).append(calendar)
            calendars = self._batch.get(unit.id, [])
        if not calendars:
            raise SourceError(f"UnitCalendarAvailBatch: no calendar for unit {unit.id!r} in the answer")
        if len(calendars) > 1:  # which one is right cannot be told: never resolved by order
            raise SourceError(f"UnitCalendarAvailBatch: {len(calendars)} calendars for unit {unit.id!r} in "
                              "one answer; none is trusted")
        return calendars[0].segments

    def _unit_search(self, request: ET.Element) -> None:
        request.set("MaxResponses", str(MAX_UNITS))
        request.set("ResponseType", "PropertyList")
        criteria = ET.SubElement(request, q("Criteria"), AvailableOnlyIndicator="false")
        ET.SubElement(criteria, q("Criterion"))

    def _unit_calendar(self, request: ET.Element, unit_code: str, start: dt.date, end: dt.date) -> None:
        ET.SubElement(request, q("UnitRef"), UnitCode=unit_code)
        last_night = end - dt.timedelta(days=1)
        ET.SubElement(request, q("CalendarDateRange"),
                      Start=start.strftime("%m/%d/%Y"), End=last_night.strftime("%m/%d/%Y"))

    def _batch_request(self, request: ET.Element) -> None:
        request.set("SummaryOnly", "false")
        request.set("ShowHold", "true")
        wanted = ET.SubElement(request, q("CalenadAvails"))  # sic: the schema's spelling
        attributes = {}
        if self.account.property_manager_code:
            attributes["PropertyManagerCode"] = self.account.property_manager_code
        ET.SubElement(wanted, q("CalendarAvail"), attributes)

    def _call(self, service: str, operation: str, fill) -> ET.Element:
        """POST ``EVRN_<operation>RQ`` (``fill`` adds its content); return the RS element."""
        envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
        body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        request = ET.SubElement(body, q(f"EVRN_{operation}RQ"), Version=VERSION)
        source = ET.SubElement(ET.SubElement(request, q("POS")), q("Source"))
        ET.SubElement(source, q("RequestorID"), ID=self.account.username,
                      MessagePassword=self.account.password)
        fill(request)
        payload = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
        try:
            return self.http.request(
                "POST", f"{self.account.base_url}/{service}", operation=operation, data=payload,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": operation},
                decode=lambda result: _answer(result, operation))
        except HttpStatusError as exc:
            fault = fault_of(exc.body)
            if fault:
                raise SourceError(f"{exc}: SOAP fault: {fault}") from None
            raise


def _answer(result: HttpResult, operation: str) -> ET.Element:
    return parse_answer(result.body, operation)
