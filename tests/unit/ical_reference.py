"""The feed as the icalendar library writes it: the reference the hand-written renderer
(feeds/render.py ``render_events``) is compared with byte for byte."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from icalendar import Calendar, Event, vDuration, vText

from escapia_ical.feeds.render import PRODID, REFRESH, display_name
from escapia_ical.feeds.text import escape_text, fold_content_lines
from escapia_ical.model import Unit


class TextValue(vText):
    """A TEXT value icalendar writes as feeds/text.py escapes it (icalendar's own escaping
    differs between versions: see feeds/text.py)."""

    __slots__ = ()

    def to_ical(self) -> bytes:
        return escape_text(str(self)).encode("utf-8")


def reference_render(unit: Unit, events: Sequence[tuple[str, dt.date, dt.date | None, str]],
                     dtstamp: dt.datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", TextValue(PRODID))
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    title = display_name(unit)
    calendar.add("x-wr-calname", TextValue(title))
    calendar.add("name", TextValue(title))
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    stamp = dtstamp.astimezone(dt.UTC).replace(microsecond=0)
    for uid, start, end, summary in events:
        event = Event()
        event.add("uid", TextValue(uid))
        event.add("dtstamp", stamp)
        event.add("dtstart", start)
        if end is not None:
            event.add("dtend", end)
        event.add("summary", TextValue(summary))
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return fold_content_lines(calendar.to_ical())
