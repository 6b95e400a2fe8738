"""EscapiaNET, Escapia's SOAP 1.1 API: units and their DailyAvailability calendars.

Two ways to read calendars, per account (``calendar_mode``):
- ``batch`` (default): ``UnitSearch`` for the units, then one ``UnitCalendarAvailBatch``
  call on the content service for all their calendars: two requests per sync whatever the
  number of units. Discovery stays with UnitSearch so that a unit the batch leaves out is
  an error for that unit, not a feed that silently stops updating. The batch asks for the
  feed window (``CalendarDateRange``), but what a calendar covers is read from the answer.
- ``per_unit``: ``UnitSearch``, then ``UnitCalendarAvail`` per unit over the feed window.
Each mode's *other* operation is the independent view the publish policy asks when a
calendar would free nights (``explain``): a batch loss is checked with UnitCalendarAvail
for that unit, a per-unit loss against one batch per run. A quiet tick
(:mod:`escapia_ical.sync.quiet`) may read a batch account's few changed units one by one
(``read_per_unit``); their losses are then checked against the batch.
Holds are asked for in both operations (``ShowHolds``/``ShowHold``). A unit list Escapia cut
short (``Units/@moredata``) is used, and ``listing_truncated`` says so.
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
    from_cache,
    parse_answer,
    parse_batch,
    parse_unit_calendar,
    parse_units,
    q,
    units_truncated,
)
from escapia_ical.sources.http import HttpClient, HttpResult, HttpStatusError, Sleep

VERSION = "1.030"
MAX_UNITS = 100_000
CONTENT_SERVICE, TRANSACTION_SERVICE = "EVRNContentService.svc", "EVRNService.svc"
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
        self._window: FeedWindow | None = None  # the run's feed window (explain's batch asks for it)
        self.read_per_unit = account.calendar_mode == "per_unit"  # a quiet tick may set it
        self.listing_truncated = False  # UnitSearch said moredata
        self.batch_from_cache = False  # the run's full batch said CachedData
        self.batch_stamps: dict[str, str] = {}  # unit -> LastUpdated in the run's full batch

    # -- the Source interface -------------------------------------------------------

    def list_units(self) -> list[Unit]:
        """Return every distributed unit (UnitSearch)."""
        answer = self._call(TRANSACTION_SERVICE, "UnitSearch", self._unit_search)
        self.listing_truncated = units_truncated(answer)
        return list({u.id: u for u in parse_units(answer)}.values())

    def changed_units(self, after: dt.datetime) -> tuple[dict[str, str], bool]:
        """Return unit -> LastUpdated of the units Escapia says changed at or after ``after``
        (a summary batch: no calendars), and whether the answer may come from a cache."""
        answer = self._call(CONTENT_SERVICE, "UnitCalendarAvailBatch",
                            lambda request: self._batch_request(request, None, after))
        return {c.unit.id: c.last_updated for c in parse_batch(answer)}, from_cache(answer)

    def calendar(self, unit: Unit, window: FeedWindow) -> UnitCalendar:
        """Return the unit's blocked ranges (half-open, one per stay or hold) and the nights
        its segments cover: from the run's one batch, or from a UnitCalendarAvail over the
        window. Raise SourceError if the answer holds no calendar, or two, for the unit."""
        self._window = window
        if self.read_per_unit:
            segments = self._unit_segments(unit, window.start, window.end)
        else:
            segments = self._batch_segments(unit, window)
        answer = self._decode(segments, unit)
        # A calendar dump may reach past the window (the batch spans 3 years): expected,
        # so what lies wholly outside is dropped here, and the nights covered are those
        # asked for at most (what lies past them was dropped: the caller must not count
        # on it, sync/margin.py).
        return UnitCalendar(tuple(r for r in answer.ranges if r.end > window.start and r.start < window.end),
                            tuple(spans.clip(answer.covered, window.start, window.end)))

    def explain(self, unit: Unit, nights: list[Span]) -> Explanation:
        """Return which of ``nights`` the calendar operation this account does not read
        calendars with shows free and which booked (nights it does not cover are neither)."""
        if not self.read_per_unit:
            view = "UnitCalendarAvail"
            answer = self._decode(self._unit_segments(unit, nights[0][0], nights[-1][1]), unit)
        else:
            view = "UnitCalendarAvailBatch"
            window = self._window or FeedWindow(nights[0][0], nights[-1][1])
            answer = self._decode(self._batch_segments(unit, window), unit)
        covered = spans.intersect(nights, answer.covered)
        booked = spans.intersect(covered, ((r.start, r.end) for r in answer.ranges))
        if self.read_per_unit and self.batch_from_cache:
            # A cached batch may be older than the calendar it would vouch for: it may say
            # booked (kept, the safe side), never free.
            return Explanation(view + " (cached)", (), tuple(booked))
        return Explanation(view, tuple(spans.subtract(covered, booked)), tuple(booked))

    # -- requests ---------------------------------------------------------------------

    def _decode(self, segments: list[ET.Element], unit: Unit) -> UnitCalendar:
        where = f"unit {unit.id!r}"
        if not segments:
            raise SourceError(f"{where}: the calendar has no segments")
        return self.decoder.calendar(segments, where)

    def _unit_segments(self, unit: Unit, start: dt.date, end: dt.date) -> list[ET.Element]:
        answer = self._call(TRANSACTION_SERVICE, "UnitCalendarAvail",
                            lambda request: self._unit_calendar(request, unit.id, start, end))
        return parse_unit_calendar(answer, unit.id)

    def load_batch(self, window: FeedWindow) -> None:
        """Fetch this run's batch now (so that its failure is the account's, not every
        unit's); raise what fetching it raised."""
        self._batch_segments(None, window)

    def _batch_segments(self, unit: Unit | None, window: FeedWindow) -> list[ET.Element]:
        """Return the unit's segments from this run's batch, fetched once for all units (by
        whichever thread needs it first) over ``window``. A failed batch is remembered too:
        every unit then fails with its error at once instead of asking (and waiting) again."""
        with self._batch_lock:
            if self._batch_error is not None:
                raise self._batch_error
            if self._batch is None:
                try:
                    answer = self._call(CONTENT_SERVICE, "UnitCalendarAvailBatch",
                                        lambda request: self._batch_request(request, window, None))
                except SourceError as exc:
                    self._batch_error = exc
                    raise
                self._batch, self.batch_from_cache = {}, from_cache(answer)
                for calendar in parse_batch(answer):
                    self._batch.setdefault(calendar.unit.id, []).append(calendar)
                    self.batch_stamps[calendar.unit.id] = calendar.last_updated
            if unit is None:
                return []
            calendars = self._batch.get(unit.id, [])
        if not calendars:
            raise SourceError(f"UnitCalendarAvailBatch: no calendar for unit {unit.id!r} in the answer")
        if len(calendars) > 1:  # which one is right cannot be told: never resolved by order
            raise SourceError(f"UnitCalendarAvailBatch: {len(calendars)} calendars for unit {unit.id!r} in "
                              "one answer; none is trusted")
        return calendars[0].segments

    def _unit_search(self, request: ET.Element) -> None:
        # No Criteria (optional in the schema): every unit distributed to us. Names come on
        # Unit/@UnitName; the unit summary and rates are not wanted.
        request.set("MaxResponses", str(MAX_UNITS))
        request.set("ResponseType", "PropertyList")
        request.set("SendRateDetails", "false")
        request.set("SendUnitSummary", "false")

    def _unit_calendar(self, request: ET.Element, unit_code: str, start: dt.date, end: dt.date) -> None:
        ET.SubElement(request, q("UnitRef"), UnitCode=unit_code)
        ET.SubElement(request, q("CalendarDateRange"), _date_range(start, end))
        ET.SubElement(request, q("ShowHolds")).text = "true"

    def _batch_request(self, request: ET.Element, window: FeedWindow | None,
                       after: dt.datetime | None) -> None:
        """A full batch over ``window``, or (``after``) the summary of the units changed since."""
        request.set("SummaryOnly", "false" if after is None else "true")
        request.set("ShowHold", "true")
        wanted = ET.SubElement(request, q("CalenadAvails"))  # sic: the schema's spelling
        attributes = {}
        if self.account.property_manager_code:
            attributes["PropertyManagerCode"] = self.account.property_manager_code
        if after is not None:
            attributes["UpdatedAfter"] = after.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item = ET.SubElement(wanted, q("CalendarAvail"), attributes)
        if window is not None:
            ET.SubElement(item, q("CalendarDateRange"), _date_range(window.start, window.end))

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


def _date_range(start: dt.date, end: dt.date) -> dict[str, str]:
    """CalendarDateRange attributes for the nights ``start <= d < end`` (End: the last night)."""
    return {"Start": start.strftime("%m/%d/%Y"), "End": (end - dt.timedelta(days=1)).strftime("%m/%d/%Y")}


def _answer(result: HttpResult, operation: str) -> ET.Element:
    return parse_answer(result.body, operation)
