"""A channel's calendar export (.ics) read as the nights it books: pure, no I/O.

Parsed with icalendar; recurring events are expanded within the window by
recurring-ical-events (RRULE, RDATE, EXDATE and moved occurrences alike). All-day (DATE)
events are nights already: DTSTART is the first night, DTEND the checkout day. DATE-TIME
events are read in the unit's time zone (a floating time is taken to be in it; a time of
midnight is a date written as a time, taken as its own date): the first night is the local
date of DTSTART, the checkout day the local date of DTEND, and an event that ends on the
day it starts still books that night (more is blocked, never less).
Cancelled events (``STATUS:CANCELLED``) book nothing.

Only dates leave this module, an opaque key per event (a keyed hash of its UID, for
matching the same booking across fetches) and whether the channel words it as a block rather than a
booking (its SUMMARY says "not available", "blocked", "closed" or "unavailable": Airbnb's
imported and manual blocks, Booking.com's closed dates): a channel's SUMMARY, DESCRIPTION
or UID may carry a guest's name or a reservation code, and none of them is ever kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from escapia_ical.errors import SourceError

MAX_EVENTS = 20_000  # occurrences in the window: far above any real unit's calendar
ONE_DAY = dt.timedelta(days=1)
BLOCK_WORDS = ("not available", "unavailable", "blocked", "closed")


class ChannelFeedError(SourceError):
    """A channel's answer is not a calendar we can read."""


@dataclass(frozen=True, order=True)
class ChannelEvent:
    """Nights a channel event books: ``start`` is the first night, ``end`` the checkout day.
    ``ours``: its UID is in one of our UID domains (our own feed, echoed back). ``key``:
    16 hex digits of a hash of its UID, never the UID itself. ``block``: worded as a block,
    not a booking (see the module)."""

    start: dt.date
    end: dt.date
    ours: bool = False
    key: str = ""
    block: bool = False


def channel_events(body: bytes, start: dt.date, end: dt.date, zone: ZoneInfo | None,
                   our_domains: Iterable[str], secret: bytes = b"") -> list[ChannelEvent]:
    """Given a channel's .ics bytes, return the events booking nights in ``[start, end)``,
    sorted, duplicates dropped. ``zone``: the unit's time zone for DATE-TIME events (None:
    the host's). ``our_domains``: the UID domains our feeds use (echo detection).
    ``secret`` keys the hash of each UID (a plain hash of a short reservation code could be
    reversed by trying them all).

    Raise ChannelFeedError if the body is not an iCalendar VCALENDAR, or its recurrences
    could expand beyond MAX_EVENTS occurrences (see _check_recurrences).
    """
    import icalendar  # here: only a run with imports due pays for the import
    import recurring_ical_events

    try:
        calendar = icalendar.Calendar.from_ical(body)
    except Exception as exc:  # noqa: BLE001 - the parser raises many kinds for bad input
        raise ChannelFeedError(f"not an iCalendar file ({exc.__class__.__name__})") from None
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise ChannelFeedError("not an iCalendar file (no VCALENDAR)")
    _check_recurrences(calendar, (end - start).days)
    suffixes = tuple(f"@{domain.lower()}" for domain in our_domains)
    key = hashlib.blake2b(secret, digest_size=32).digest()
    found: set[ChannelEvent] = set()
    try:
        for occurrence in recurring_ical_events.of(calendar, components=["VEVENT"]).between(start, end):
            nights = _nights(occurrence, zone)
            if nights is None or nights[1] <= start or nights[0] >= end:
                continue
            if str(occurrence.get("STATUS", "")).strip().upper() == "CANCELLED":
                continue
            uid = str(occurrence.get("UID", ""))
            digest = hashlib.blake2b(uid.encode("utf-8", "replace"), key=key, digest_size=8)
            summary = str(occurrence.get("SUMMARY", "")).lower()
            block = any(word in summary for word in BLOCK_WORDS)
            found.add(ChannelEvent(nights[0], nights[1], uid.lower().endswith(suffixes),
                                   digest.hexdigest() if uid else "",
                                   block))
    except Exception as exc:  # noqa: BLE001 - a bad RRULE or date raises from deep inside
        raise ChannelFeedError(f"cannot read its events ({exc.__class__.__name__})") from None
    return sorted(found)


def _check_recurrences(calendar, days: int) -> None:
    """Refuse, before expanding anything, recurrences that could take long or grow without
    bound: finer than a day (no stay recurs by the hour; an RRULE of every minute for two
    years takes minutes to expand), or more occurrences in the window, at one a day at most
    each, than MAX_EVENTS. Raise ChannelFeedError."""
    recurring = dates = 0
    for event in calendar.walk("VEVENT"):
        rules = event.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            freq = str((rule.get("FREQ") or [""])[0]).upper()
            finer = any(k in rule for k in ("BYHOUR", "BYMINUTE", "BYSECOND"))
            if finer or freq in ("SECONDLY", "MINUTELY", "HOURLY"):
                raise ChannelFeedError(f"a recurrence finer than a day (FREQ={freq or '?'}) is no stay")
            recurring += 1
        extra = event.get("RDATE")
        for value in extra if isinstance(extra, list) else [extra] if extra is not None else []:
            dates += len(getattr(value, "dts", [None]))
    if recurring * days + dates > MAX_EVENTS:
        raise ChannelFeedError(f"{recurring} recurring events could make more than {MAX_EVENTS} in the "
                               "window")


def _nights(event, zone: ZoneInfo | None) -> tuple[dt.date, dt.date] | None:
    """Return (first night, checkout day) of an expanded event, or None without a DTSTART."""
    begin = event.get("DTSTART")
    if begin is None:
        return None
    first = _local_date(begin.dt, zone)
    finish = event.get("DTEND")
    checkout = _local_date(finish.dt, zone) if finish is not None else first + ONE_DAY
    return first, max(checkout, first + ONE_DAY)


def _local_date(value: dt.date | dt.datetime, zone: ZoneInfo | None) -> dt.date:
    if not isinstance(value, dt.datetime):
        return value
    if value.tzinfo is None or value.time() == dt.time(0):
        # Floating: the unit's own local time. Midnight (in its own zone, UTC included): a
        # date written as a time, as some exports do; moved into a zone west of it, it
        # would start a night early and lose its last night.
        return value.date()
    return value.astimezone(zone).date()  # (zone None: the host's time zone)
