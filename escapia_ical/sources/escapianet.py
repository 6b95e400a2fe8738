"""EscapiaNET, Escapia's SOAP 1.1 API: units and their DailyAvailability calendars.

Two ways to read calendars, per account (``calendar_mode``):
- ``batch`` (default): ``UnitSearch`` for the units, then one ``UnitCalendarAvailBatch``
  call on the content service for all their calendars: two requests per sync whatever the
  number of units. Discovery stays with UnitSearch so that a unit the batch leaves out is
  an error for that unit, not a feed that silently stops updating. The batch calendar's
  range is Escapia's, not ours (it starts today).
- ``per_unit``: ``UnitSearch``, then ``UnitCalendarAvail`` per unit over the feed window.
Request XML is built with ElementTree (values escaped); answers are parsed with defusedxml.
"""

from __future__ import annotations

import datetime as dt
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - builds our own requests; answers use defusedxml

from escapia_ical.config import EscapianetAccount
from escapia_ical.errors import SourceError
from escapia_ical.model import BlockedRange, FeedWindow, Unit
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
MAX_BATCH_REFETCHES = 2  # second opinions for the shrink guard, per run
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
        self.decoder = DailyDecoder(account.name, account.blocked_codes)
        self._batch: dict[str, Calendar] | None = None
        self._generation = 0  # batches fetched this run
        self._first_read: dict[str, int] = {}  # unit -> the batch generation it was first read from
        self._refetches = 0
        self._batch_error: SourceError | None = None
        self._batch_lock = threading.Lock()

    # -- the Source interface -------------------------------------------------------

    def list_units(self) -> list[Unit]:
        """Return every distributed unit (UnitSearch)."""
        answer = self._call("EVRNService.svc", "UnitSearch", self._unit_search)
        return list({u.id: u for u in parse_units(answer)}.values())

    def blocked_ranges(self, unit: Unit, window: FeedWindow, *, fresh: bool = False) -> list[BlockedRange]:
        """Return the unit's blocked ranges, half-open, one per stay or hold.

        In batch mode a ``fresh`` answer comes from a newer batch than the unit's first
        read (one answer must never confirm itself); the batch is fetched again when needed,
        at most ``MAX_BATCH_REFETCHES`` times per run. Raise SourceError if no newer batch
        can be had: the unit then waits for the next run.
        """
        where = f"unit {unit.id!r}"
        if self.account.calendar_mode == "batch":
            with self._batch_lock:
                first = self._first_read.get(unit.id)
                if fresh and first == self._generation and self._refetches < MAX_BATCH_REFETCHES:
                    self._batch, self._batch_error = None, None
                    self._refetches += 1
                calendars = self._batch_calendars_locked()
                if fresh and first == self._generation:
                    raise SourceError(f"{where}: no newer batch to confirm its calendar with this run")
                self._first_read.setdefault(unit.id, self._generation)
            calendar = calendars.get(unit.id)
            if calendar is None:
                raise SourceError(f"UnitCalendarAvailBatch: no calendar for {where} in the answer")
            segments = calendar.segments
        else:
            answer = self._call("EVRNService.svc", "UnitCalendarAvail",
                                lambda request: self._unit_calendar(request, unit.id, window))
            segments = parse_unit_calendar(answer, unit.id)
        if not segments:
            raise SourceError(f"{where}: the calendar has no segments")
        # A calendar dump may reach past the window (the batch spans 3 years): expected,
        # so what lies wholly outside is dropped here rather than warned about later.
        return [r for r in self.decoder.ranges(segments, where)
                if r.end > window.start and r.start < window.end]

    # -- requests ---------------------------------------------------------------------

    def _batch_calendars_locked(self) -> dict[str, Calendar]:
        """Return the current batch (the caller holds the lock: several threads, one batch).
        A failed batch is remembered too: every unit then fails with its error at once
        instead of asking (and waiting) again."""
        if self._batch_error is not None:
            raise self._batch_error
        if self._batch is None:
            try:
                answer = self._call("EVRNContentService.svc", "UnitCalendarAvailBatch", self._batch_request)
            except SourceError as exc:
                self._batch_error = exc
                raise
            self._batch = {c.unit.id: c for c in parse_batch(answer)}
            self._generation += 1
        return self._batch

    def _unit_search(self, request: ET.Element) -> None:
        request.set("MaxResponses", str(MAX_UNITS))
        request.set("ResponseType", "PropertyList")
        criteria = ET.SubElement(request, q("Criteria"), AvailableOnlyIndicator="false")
        ET.SubElement(criteria, q("Criterion"))

    def _unit_calendar(self, request: ET.Element, unit_code: str, window: FeedWindow) -> None:
        ET.SubElement(request, q("UnitRef"), UnitCode=unit_code)
        last_night = window.end - dt.timedelta(days=1)
        ET.SubElement(request, q("CalendarDateRange"),
                      Start=window.start.strftime("%m/%d/%Y"), End=last_night.strftime("%m/%d/%Y"))

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
