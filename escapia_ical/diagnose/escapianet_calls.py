"""The EscapiaNET calendar requests a diagnosis sends, and what their answers hold.

The client reads calendars one way per account; a diagnosis asks both ways, with and
without holds, over stated dates. These requests are built here and sent through
``EscapianetSource._call`` — its envelope, credentials, HTTP policy and answer checks — on
purpose, so that they are exactly what a sync would send apart from the options probed.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # noqa: S405 - builds our own requests; answers use defusedxml
from collections import Counter
from dataclasses import dataclass

from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.escapianet import EscapianetSource
from escapia_ical.sources.escapianet_decode import KNOWN_CODES, parse_batch, parse_unit_calendar, q

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Segment:
    """One ``UnitCalendarAvailSegment`` as sent: its StartDate, EndDate (None if absent or
    unreadable) and DailyAvailability string (one letter per night from StartDate)."""

    start: dt.date
    end_date: dt.date | None
    daily: str

    @property
    def span(self) -> Span:
        return self.start, self.start + dt.timedelta(days=len(self.daily))

    @property
    def end_date_reading(self) -> str:
        """How EndDate relates to the string: "last night", "day after", "absent" or "disagrees"."""
        if self.end_date is None:
            return "absent"
        last = self.start + dt.timedelta(days=len(self.daily) - 1)
        return {last: "last night", last + ONE_DAY: "day after"}.get(self.end_date, "disagrees")


@dataclass(frozen=True)
class UnitAnswer:
    """One unit's calendar in one answer."""

    segments: tuple[Segment, ...]

    def covered(self) -> list[Span]:
        return spans.normalize(s.span for s in self.segments)

    def letters(self) -> Counter[str]:
        return Counter(letter for s in self.segments for letter in s.daily)

    def blocked(self, blocked_codes: str) -> list[Span]:
        """Return the nights blocked as a sync reads them: a letter of ``blocked_codes``, or
        any letter outside AUIO (unknown letters block)."""
        nights = [(s.start + dt.timedelta(days=i), s.start + dt.timedelta(days=i + 1))
                  for s in self.segments for i, letter in enumerate(s.daily)
                  if letter in blocked_codes or letter not in KNOWN_CODES]
        return spans.normalize(nights)


def read_segments(elements: list[ET.Element], where: str) -> UnitAnswer:
    """Return the segments' dates and strings. Raise SourceError for a segment without a
    readable StartDate."""
    segments = []
    for index, element in enumerate(elements):
        start = parse_api_date(element.get("StartDate"), f"{where}: segment {index} StartDate")
        try:
            end = parse_api_date(element.get("EndDate"), "EndDate") if element.get("EndDate") else None
        except SourceError:
            end = None
        daily = "".join((element.findtext(q("DailyAvailability")) or "").split())
        if len(daily) > (dt.date.max - start).days:
            raise SourceError(f"{where}: segment {index}: a {len(daily)}-day string runs past year 9999")
        segments.append(Segment(start, end, daily))
    return UnitAnswer(tuple(segments))


def _date_range(parent: ET.Element, nights: Span) -> None:
    start, end = nights
    ET.SubElement(parent, q("CalendarDateRange"), Start=start.strftime("%m/%d/%Y"),
                  End=(end - ONE_DAY).strftime("%m/%d/%Y"))  # End is the last night asked


def batch_calendars(source: EscapianetSource, nights: Span, *,
                    show_hold: bool) -> tuple[dict[str, UnitAnswer], int]:
    """Return every unit's calendar in one UnitCalendarAvailBatch over ``nights`` (with or
    without ``ShowHold``), and how many units came more than once (only the first is kept)."""
    account = source.account

    def fill(request: ET.Element) -> None:
        request.set("SummaryOnly", "false")
        request.set("ShowHold", "true" if show_hold else "false")
        wanted = ET.SubElement(request, q("CalenadAvails"))  # sic: the schema's spelling
        code = account.property_manager_code
        attributes = {"PropertyManagerCode": code} if code else {}
        _date_range(ET.SubElement(wanted, q("CalendarAvail"), attributes), nights)

    answer = source._call("EVRNContentService.svc", "UnitCalendarAvailBatch", fill)
    calendars: dict[str, UnitAnswer] = {}
    repeated = 0
    for calendar in parse_batch(answer):
        if calendar.unit.id in calendars:
            repeated += 1
            continue
        calendars[calendar.unit.id] = read_segments(calendar.segments, f"batch, unit {calendar.unit.id!r}")
    return calendars, repeated


def unit_calendar(source: EscapianetSource, unit_id: str, nights: Span, *, show_holds: bool) -> UnitAnswer:
    """Return one UnitCalendarAvail answer over ``nights``, with or without ``ShowHolds``."""

    def fill(request: ET.Element) -> None:
        ET.SubElement(request, q("UnitRef"), UnitCode=unit_id)
        _date_range(request, nights)
        if show_holds:  # an optional element after CalendarDateRange (API-NOTES.md)
            ET.SubElement(request, q("ShowHolds")).text = "true"

    answer = source._call("EVRNService.svc", "UnitCalendarAvail", fill)
    return read_segments(parse_unit_calendar(answer, unit_id), f"unit {unit_id!r}")
