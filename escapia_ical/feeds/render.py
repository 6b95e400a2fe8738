"""The feed renderer: pure functions from blocks to iCalendar bytes. No I/O.

What a feed may say is deliberately narrow: dates, a fixed SUMMARY and opaque UIDs. Guest
names, contacts, reservation numbers and prices never reach this module, and nothing here
could print them if they did.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Sequence

from escapia_ical import __version__
from escapia_ical.config import FeedSettings
from escapia_ical.config.profiles import Profile
from escapia_ical.feeds.profiles import ProfileBlock
from escapia_ical.feeds.ranges import FeedBlock
from escapia_ical.feeds.text import FOLD_OCTETS, escape_text, fold_content_lines
from escapia_ical.model import Unit

PRODID = f"-//escapia-ical//escapia-ical {__version__}//EN"
_PRODID = escape_text(PRODID)
MAX_NAME = 200
# Control characters, line separators and lone surrogates (which cannot be encoded).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
REFRESH = dt.timedelta(minutes=5)
_REFRESH = "PT5M"  # REFRESH as icalendar writes a DURATION (tests/unit/ical_reference.py compares)


def event_uid(account: str, unit_id: str, block: FeedBlock, domain: str) -> str:
    """Return the event's UID: stable for the same block on every run, and opaque.

    It hashes the account, the unit and the whole block's dates (NUL-separated), so it holds
    nothing a reader could use, and two blocks never share it.
    """
    return _uids(account, unit_id, domain)(block)


def display_name(unit: Unit) -> str:
    """Return the calendar's name: the unit's name (or code, or id) as one clean line.

    Names come from Escapia; a CR, LF or other control character in one would break the
    iCalendar content line (or crash the renderer), so they become spaces.
    """
    for raw in (unit.name, unit.code, unit.id):
        name = " ".join(_CONTROL.sub(" ", raw or "").split())[:MAX_NAME]
        if name:
            return name
    return "unit"


def content_digest(unit: Unit, blocks: Sequence[FeedBlock], settings: FeedSettings) -> str:
    """Return a digest of everything a feed shows except DTSTAMP.

    Equal digests mean the feed's content is unchanged, so the previous DTSTAMP (the time
    the data last changed, which RFC 5545 allows without METHOD) can be kept and the file
    stays byte-identical.
    """
    # Joined by hand, not json.dumps'd: the daily roll digests every unit's blocks (an eighth
    # of its CPU). The head is JSON (names may hold any character); a block is "s/e" when
    # shown whole, "s/e:origin-s/origin-e" when cut by the window: dates hold no "/", ":" or " ".
    head = json.dumps([__version__, display_name(unit), settings.summary, settings.uid_domain])
    body = " ".join(f"{iso(b.shown.start)}/{iso(b.shown.end)}" if b.shown is b.origin or b.shown == b.origin
                    else f"{iso(b.shown.start)}/{iso(b.shown.end)}:{iso(b.origin.start)}/{iso(b.origin.end)}"
                    for b in blocks)
    return hashlib.sha256(f"{head}\n{body}".encode()).hexdigest()


def render_feed(
    account: str,
    unit: Unit,
    blocks: Sequence[FeedBlock],
    settings: FeedSettings,
    dtstamp: dt.datetime,
) -> bytes:
    """Given a unit and its blocks, return its calendar as iCalendar bytes.

    One all-day VEVENT per block: DTSTART is the first blocked night, DTEND the checkout
    day (exclusive). ``dtstamp`` (UTC) goes into every event. CRLF line endings come from
    the icalendar library; TEXT escaping and 75-octet folding from feeds/text.py, the same
    on every icalendar version.
    """
    if not blocks:  # (no hash for an empty feed)
        return _render(unit, [], dtstamp, None)
    uid = _uids(account, unit.id, _escape_domain(settings.uid_domain))
    events = [(uid(b), b.shown.start, b.shown.end, settings.summary) for b in blocks]
    return _render(unit, events, dtstamp, uid_octets=_octets(f"UID:{events[0][0]}"))


def _uids(account: str, unit_id: str, domain: str):  # noqa: ANN202 - a closure
    """:func:`event_uid` for one unit's blocks, the one place its formula is written: the
    hash of the account and unit is taken once, then copied for each block (a cold sync of
    10,000 units names half a million).

    Given the domain as a TEXT value (escaped), the UIDs come out as TEXT values too: the
    hash is hex digits, nothing in it to escape (render_feed then escapes none again)."""
    head = hashlib.sha256(f"{account}\0{unit_id}\0".encode())

    def uid(block: FeedBlock) -> str:
        digest = head.copy()
        digest.update(f"{iso(block.origin.start)}\0{iso(block.origin.end)}".encode())
        return f"{digest.hexdigest()[:32]}@{domain}"
    return uid


def profile_uid(account: str, unit_id: str, profile: str, block: ProfileBlock, domain: str) -> str:
    """Return a profile event's UID: like :func:`event_uid`, with the profile in the hash, so
    a profile's events never share a UID with the default feed's or another profile's."""
    key = "\0".join((account, unit_id, f"profile:{profile}", block.origin.start.isoformat(),
                     block.origin.end.isoformat()))
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}"


def profile_events(account: str, unit: Unit, blocks: Sequence[ProfileBlock], profile: Profile,
                   settings: FeedSettings) -> list[tuple[str, dt.date, dt.date | None, str]]:
    """Return the profile feed's events as (UID, DTSTART, DTEND or None, SUMMARY).

    DTEND is the checkout day (RFC 5545: exclusive); with ``dtend: last_night`` it is the
    last blocked night, for importers that read DTEND inclusively — and absent for a
    one-night event (an all-day event without DTEND lasts one day; DTEND equal to DTSTART
    would be invalid)."""
    domain = profile.uid_domain or settings.uid_domain
    events = []
    for block in blocks:
        end: dt.date | None = block.shown.end
        if profile.dtend == "last_night":
            end = block.shown.end - dt.timedelta(days=1)
            end = end if end > block.shown.start else None
        events.append((profile_uid(account, unit.id, profile.name, block, domain), block.shown.start, end,
                       profile.summary_for(block.kind, settings.summary)))
    return events


def events_digest(unit: Unit, events: Sequence[tuple[str, dt.date, dt.date | None, str]]) -> str:
    """Return a digest of everything a profile feed shows except DTSTAMP (see content_digest)."""
    material = {"version": __version__, "name": display_name(unit),
                "events": [[uid, start.isoformat(), end.isoformat() if end else None, summary]
                           for uid, start, end, summary in events]}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def render_events(unit: Unit, events: Sequence[tuple[str, dt.date, dt.date | None, str]],
                  dtstamp: dt.datetime) -> bytes:
    """Return a calendar of the given all-day events — (UID, DTSTART, DTEND or None,
    SUMMARY) — as iCalendar bytes; ``dtstamp`` (UTC) goes into every event.

    Written by string formatting, not with icalendar's Calendar: the subset is narrow (one
    VCALENDAR, all-day VEVENTs, eight properties) and icalendar took 3.8 ms for a 40-event
    feed against 0.16 ms, which at 10,000 units is the daily roll's whole cost. The bytes
    are exactly icalendar 7's (its property order, CRLF lines) — tests/unit/test_render_bytes.py
    compares them byte for byte with the library and parses them with icalendar, vobject
    and ical. TEXT escaping and folding are feeds/text.py's, as before.
    """
    return _render(unit, [(_escape_uid(uid), start, end, summary) for uid, start, end, summary in events],
                   dtstamp, None)


def _render(unit: Unit, events: Sequence[tuple[str, dt.date, dt.date | None, str]], dtstamp: dt.datetime,
            uid_octets: int | None) -> bytes:
    """:func:`render_events` for events whose UIDs are TEXT values already. ``uid_octets``:
    the octets every UID line has (render_feed's UIDs are all as long), letting a feed whose
    variable lines are all short skip the folding pass, which would leave it as it is (most
    feeds; tests/unit/test_render_bytes.py tries the edges)."""
    title = escape_text(display_name(unit))
    summaries: dict[str, str] = {}  # a feed repeats one or two SUMMARYs: escaped once
    utc = dtstamp.astimezone(dt.UTC)
    stamp = f"{_date(utc)}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_PRODID}", "CALSCALE:GREGORIAN",
             f"NAME:{title}", f"X-WR-CALNAME:{title}", f"REFRESH-INTERVAL;VALUE=DURATION:{_REFRESH}",
             f"X-PUBLISHED-TTL:{_REFRESH}"]
    for uid, start, end, summary in events:  # an event's lines in one string: 2x faster than one by one
        text = summaries.get(summary)
        if text is None:
            text = summaries[summary] = escape_text(summary)
        ends = "" if end is None else f"DTEND;VALUE=DATE:{_date(end)}\r\n"
        lines.append(f"BEGIN:VEVENT\r\nSUMMARY:{text}\r\nDTSTART;VALUE=DATE:{_date(start)}\r\n{ends}"
                     f"DTSTAMP:{stamp}\r\nUID:{uid}\r\nTRANSP:OPAQUE\r\nEND:VEVENT")
    lines += ["END:VCALENDAR", ""]
    data = "\r\n".join(lines).encode("utf-8")
    # Only these lines can be long (the others have a fixed width of at most 38 octets), and
    # none of ours holds a line break followed by a space or tab for folding to undo.
    if uid_octets is not None and uid_octets <= FOLD_OCTETS and _octets(f"PRODID:{_PRODID}") <= FOLD_OCTETS \
            and _octets(f"X-WR-CALNAME:{title}") <= FOLD_OCTETS \
            and all(_octets(f"SUMMARY:{text}") <= FOLD_OCTETS for text in summaries.values()):
        return data
    return fold_content_lines(data)


def _octets(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8"))


# A cold sync of 10,000 units formats a million dates and escapes half a million UIDs
# (4 s of CPU): the dates of a window are a few hundred, the UID domains one or two.
@functools.lru_cache(maxsize=4096)
def iso(day: dt.date) -> str:
    """day.isoformat(), remembered (content digests and stamp ranges format every block)."""
    return day.isoformat()


@functools.lru_cache(maxsize=4096)
def _date(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


_escape_domain = functools.lru_cache(maxsize=64)(escape_text)


def _escape_uid(uid: str) -> str:
    """escape_text(uid), with the hash of our UIDs ("<hex>@<domain>") not searched again."""
    local, at, domain = uid.rpartition("@")
    if local.isalnum():  # nothing in it to escape
        return f"{local}{at}{_escape_domain(domain)}"
    return escape_text(uid)
