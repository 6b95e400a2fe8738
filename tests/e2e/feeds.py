"""Reading feeds back with two independent parsers, for comparison with sandbox truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import icalendar
import vobject

ALLOWED_CALENDAR = {"VERSION", "PRODID", "CALSCALE", "X-WR-CALNAME", "NAME",
                    "REFRESH-INTERVAL", "X-PUBLISHED-TTL"}
ALLOWED_EVENT = {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "TRANSP"}


def nights_icalendar(data: bytes) -> set[dt.date]:
    calendar = icalendar.Calendar.from_ical(data)
    nights: set[dt.date] = set()
    for event in calendar.walk("VEVENT"):
        start, end = event.decoded("dtstart"), event.decoded("dtend")
        assert type(start) is dt.date and type(end) is dt.date, "all-day DATE values"
        assert end > start, "DTEND is exclusive, never equal to DTSTART"
        nights |= {start + dt.timedelta(days=i) for i in range((end - start).days)}
    return nights


def nights_vobject(data: bytes) -> set[dt.date]:
    calendar = vobject.readOne(data.decode("utf-8"))
    nights: set[dt.date] = set()
    for event in getattr(calendar, "vevent_list", []):
        start, end = event.dtstart.value, event.dtend.value
        nights |= {start + dt.timedelta(days=i) for i in range((end - start).days)}
    return nights


def read_nights(path: Path) -> set[dt.date]:
    """Return the feed's blocked nights; both parsers must agree."""
    data = path.read_bytes()
    by_icalendar, by_vobject = nights_icalendar(data), nights_vobject(data)
    assert by_icalendar == by_vobject, f"parsers disagree on {path.name}"
    return by_icalendar


def property_names(path: Path) -> tuple[set[str], set[str]]:
    """Return the property names used at calendar level and in events."""
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    event_names = {name for event in calendar.walk("VEVENT") for name in event}
    return set(calendar), event_names
