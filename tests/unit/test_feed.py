"""The renderer: exact iCalendar output, stable UIDs, no personal data."""

import datetime as dt
import re

import icalendar
import vobject

from escapia_ical.config import FeedSettings
from escapia_ical.feeds.ranges import FeedBlock, feed_blocks
from escapia_ical.feeds.render import content_digest, event_uid, render_feed
from escapia_ical.model import BlockedRange, FeedWindow, Unit

D = dt.date
STAMP = dt.datetime(2026, 11, 23, 22, 5, 9, 123456, tzinfo=dt.UTC)
UNIT = Unit(id="1020-101", name="Ocean View Condo", code="OVC")
WINDOW = FeedWindow(D(2026, 11, 16), D(2028, 11, 22))


def blocks(*pairs):
    return feed_blocks([BlockedRange(D.fromisoformat(a), D.fromisoformat(b)) for a, b in pairs], WINDOW)


DEFAULTS = FeedSettings()


def render(*pairs, unit=UNIT, settings=DEFAULTS):
    return render_feed("acme", unit, blocks(*pairs), settings, STAMP)


def events(ics: bytes):
    calendar = icalendar.Calendar.from_ical(ics)
    return [(e.decoded("dtstart"), e.decoded("dtend")) for e in calendar.walk("VEVENT")]


def test_calendar_properties():
    text = render(("2026-12-01", "2026-12-04")).decode()
    lines = text.split("\r\n")
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-2] == "END:VCALENDAR" and lines[-1] == ""
    for expected in ("VERSION:2.0", "CALSCALE:GREGORIAN", "X-WR-CALNAME:Ocean View Condo",
                     "NAME:Ocean View Condo", "REFRESH-INTERVAL;VALUE=DURATION:PT5M",
                     "X-PUBLISHED-TTL:PT5M"):
        assert expected in lines
    assert any(line.startswith("PRODID:-//escapia-ical//") for line in lines)
    for forbidden in ("RRULE", "VTIMEZONE", "DESCRIPTION", "METHOD"):
        assert forbidden not in text


def test_event_is_all_day_with_exclusive_checkout():
    text = render(("2026-12-01", "2026-12-04")).decode()
    assert "DTSTART;VALUE=DATE:20261201\r\n" in text
    assert "DTEND;VALUE=DATE:20261204\r\n" in text  # checkout day, exclusive
    assert "SUMMARY:Reserved\r\n" in text
    assert "DTSTAMP:20261123T220509Z\r\n" in text


def test_one_night_back_to_back_and_year_end():
    ics = render(("2026-12-31", "2027-01-01"), ("2027-01-01", "2027-01-03"), ("2028-02-28", "2028-03-01"))
    assert events(ics) == [
        (D(2026, 12, 31), D(2027, 1, 1)),
        (D(2027, 1, 1), D(2027, 1, 3)),
        (D(2028, 2, 28), D(2028, 3, 1)),  # covers the leap day
    ]


def test_empty_calendar_is_still_valid():
    ics = render()
    assert events(ics) == []
    assert b"BEGIN:VCALENDAR" in ics


def test_uids_are_stable_opaque_and_distinct():
    first = render(("2026-12-01", "2026-12-04"), ("2026-12-04", "2026-12-05"))
    again = render(("2026-12-01", "2026-12-04"), ("2026-12-04", "2026-12-05"))
    uids = re.findall(rb"UID:(\S+)", first)
    assert uids == re.findall(rb"UID:(\S+)", again)
    assert len(set(uids)) == 2
    for uid in uids:
        assert re.fullmatch(rb"[0-9a-f]{32}@escapia-ical", uid)
        assert b"1020" not in uid and b"acme" not in uid


def test_uid_follows_the_whole_block_not_its_clipped_part():
    stay = blocks(("2026-11-10", "2026-11-20"))[0]
    later_window = FeedWindow(D(2026, 11, 18), D(2028, 11, 24))
    same_stay_later = feed_blocks([stay.origin], later_window)[0]
    assert stay.shown != same_stay_later.shown
    assert event_uid("acme", "1", stay, "x") == event_uid("acme", "1", same_stay_later, "x")


def test_long_names_fold_at_75_octets_and_unicode_survives():
    unit = Unit(id="1020/7B", name="Café «Lanai» & Spa — Suite #4, " * 4)
    ics = render(("2026-12-01", "2026-12-02"), unit=unit)
    assert all(len(line) <= 75 for line in ics.split(b"\r\n"))
    assert b"\n" not in ics.replace(b"\r\n", b"")
    # Read back with vobject: icalendar >= 7.2 returns X-WR-CALNAME still escaped.
    assert vobject.readOne(ics.decode()).x_wr_calname.value == unit.name.strip()


def test_control_characters_in_a_name_cannot_break_the_feed():
    unit = Unit(id="1", name="Line\r\nbreak\x00\x1b[31m\u2028Villa\tNo. 5")
    ics = render(("2026-12-01", "2026-12-02"), unit=unit)
    assert b"X-WR-CALNAME:Line break [31m Villa No. 5\r\n" in ics
    assert events(ics) == [(D(2026, 12, 1), D(2026, 12, 2))]
    assert vobject.readOne(ics.decode()).x_wr_calname.value == "Line break [31m Villa No. 5"
    assert b"NAME:unit\r\n" in render(unit=Unit(id="", name="\n\n"))


def test_summary_and_domain_come_from_settings():
    settings = FeedSettings(summary="Blocked", uid_domain="feeds.example.com")
    ics = render(("2026-12-01", "2026-12-02"), settings=settings)
    assert b"SUMMARY:Blocked\r\n" in ics and b"@feeds.example.com\r\n" in ics


def test_digest_changes_with_content_only():
    base = content_digest(UNIT, blocks(("2026-12-01", "2026-12-04")), FeedSettings())
    assert base == content_digest(UNIT, blocks(("2026-12-01", "2026-12-04")), FeedSettings())
    assert base != content_digest(UNIT, blocks(("2026-12-01", "2026-12-05")), FeedSettings())
    assert base != content_digest(UNIT, blocks(("2026-12-01", "2026-12-04")), FeedSettings(summary="x"))
    renamed = Unit("1020-101", "Renamed")
    assert base != content_digest(renamed, blocks(("2026-12-01", "2026-12-04")), FeedSettings())


def test_digest_tells_a_cut_block_from_a_whole_one_and_fields_apart():
    """A block cut by the window has the UID of the whole stay: the digest sees the origin
    too. Fields cannot run into each other (names may hold any character)."""
    whole = [FeedBlock(BlockedRange(D(2026, 12, 1), D(2026, 12, 4)), BlockedRange(D(2026, 12, 1), D(2026, 12, 4)))]
    cut = [FeedBlock(BlockedRange(D(2026, 12, 1), D(2026, 12, 4)), BlockedRange(D(2026, 11, 28), D(2026, 12, 4)))]
    assert content_digest(UNIT, whole, FeedSettings()) != content_digest(UNIT, cut, FeedSettings())
    unit = Unit("1", 'a", "b')
    assert content_digest(unit, whole, FeedSettings(summary="c")) != \
        content_digest(Unit("1", "a"), whole, FeedSettings(summary='b", "c'))
    assert content_digest(UNIT, [], FeedSettings()) != content_digest(UNIT, whole, FeedSettings())
