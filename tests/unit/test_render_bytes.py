"""The hand-written renderer (feeds/render.py ``render_events``) against the icalendar
library: the same bytes, and the same meaning to icalendar, vobject and ical."""

from __future__ import annotations

import datetime as dt
import unicodedata

import icalendar
import pytest
import vobject
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ical.calendar_stream import IcsCalendarStream
from ical_reference import reference_render

from escapia_ical.config.feeds import FeedSettings
from escapia_ical.feeds.ranges import FeedBlock
from escapia_ical.feeds.render import _escape_uid, _uids, display_name, event_uid, render_events, render_feed
from escapia_ical.feeds.text import escape_text
from escapia_ical.model import BlockedRange, Unit

D = dt.date
STAMP = dt.datetime(2026, 11, 30, 12, 0, 5, 999, tzinfo=dt.UTC)
NAMES = ["Ocean View Condo", "Cliff, Sea; View \\ Loft", "Harbor Loft 🌊\\nPier 9", 'Pele\'s "Hideaway" \\\\ Loft; A/C',
         "é" * 120, "🌊" * 80, "a\\" * 60, "x" * 73 + "\\,", "line\nbreak\rand\u2028more", ""]
EVENTS = [
    [],
    [("0f5c@calendars.example.com", D(2026, 12, 1), D(2026, 12, 4), "Reserved")],
    [("a@x", D(2027, 12, 31), D(2028, 1, 2), "Owner, stay; \\ 🌊"), ("b@x", D(2028, 2, 29), None, "Booked"),
     ("c@x", D(2028, 3, 1), D(2028, 3, 2), "é" * 100)],
    [(f"{i:032x}@escapia-ical", D(2026, 1, 1) + dt.timedelta(days=3 * i), D(2026, 1, 3) + dt.timedelta(days=3 * i),
      "Reserved") for i in range(40)],
]
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120)
# A unit name is Escapia's: any character at all (controls, lone surrogates from JSON escapes).
NAME = st.text(st.characters(blacklist_categories=()), max_size=120)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("events", EVENTS)
def test_the_same_bytes_as_icalendar(name, events):
    unit = Unit("7", name)
    assert render_events(unit, events, STAMP) == reference_render(unit, events, STAMP)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAME, summary=TEXT.filter(lambda s: s.strip()), nights=st.integers(0, 400), length=st.integers(1, 30),
       one_night_no_end=st.booleans())
def test_arbitrary_names_and_summaries_read_the_same_in_three_parsers(name, summary, nights, length,
                                                                      one_night_no_end):
    unit = Unit("7", name)
    start = D(2026, 12, 1) + dt.timedelta(days=nights)
    end = None if one_night_no_end else start + dt.timedelta(days=length)
    events = [("3f2a@calendars.example.com", start, end, summary)]
    data = render_events(unit, events, STAMP)
    assert data == reference_render(unit, events, STAMP)
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    title = display_name(unit)
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in title)  # one clean line
    by_icalendar = icalendar.Calendar.from_ical(data)
    event = by_icalendar.walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == summary and event.decoded("dtstart") == start
    by_vobject = vobject.readOne(data.decode("utf-8"))
    assert by_vobject.x_wr_calname.value == title and by_vobject.vevent.summary.value == summary
    assert by_vobject.vevent.dtstart.value == start
    by_ical = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    assert by_ical.events[0].summary == summary and by_ical.events[0].dtstart == start
    # icalendar and ical keep an X- property's value as written (escaped), unfolded alike
    assert str(by_icalendar["X-WR-CALNAME"]) == escape_text(title)
    assert [e.value for e in by_ical.extras if e.name == "x-wr-calname"] == [escape_text(title)]
    if end is not None:
        assert event.decoded("dtend") == by_vobject.vevent.dtend.value == by_ical.events[0].dtend == end


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAME, summary=TEXT.filter(lambda s: s.strip()),
       domain=st.one_of(st.just("rentals.example.com"), TEXT.filter(lambda s: s.strip()), st.just("é" * 40)),
       stays=st.lists(st.tuples(st.dates(D(2026, 1, 1), D(2029, 12, 31)), st.integers(1, 30)), max_size=6))
# The edges: the longest line that needs no fold (74 octets) and the shortest that does.
@example(name="x" * 61, summary="s" * 66, domain="d" * 37, stays=[(D(2027, 1, 1), 2)])
@example(name="x" * 62, summary="s" * 66, domain="d" * 37, stays=[(D(2027, 1, 1), 2)])
@example(name="x" * 61, summary="s" * 67, domain="d" * 37, stays=[(D(2027, 1, 1), 2)])
@example(name="x" * 61, summary="s" * 66, domain="d" * 38, stays=[(D(2027, 1, 1), 2)])
@example(name="x" * 61, summary="s" * 66, domain="é" * 19, stays=[(D(2027, 1, 1), 2)])
def test_render_feed_is_render_events_of_its_uids(name, summary, domain, stays):
    """render_feed (UIDs escaped once per domain, and no folding pass when every line that
    can be long is short) writes the bytes the icalendar reference writes for its events."""
    unit = Unit("1020-7", name)
    stays = [BlockedRange(start, start + dt.timedelta(days=n)) for start, n in sorted(stays)]
    blocks = [FeedBlock(stay, stay) for stay in stays]
    settings_ = FeedSettings(summary=summary, uid_domain=domain)
    events = [(event_uid("acme", unit.id, b, domain), b.shown.start, b.shown.end, summary) for b in blocks]
    assert render_feed("acme", unit, blocks, settings_, STAMP) == reference_render(unit, events, STAMP)


@settings(max_examples=300, deadline=None)
@given(local=st.one_of(st.text(alphabet="0123456789abcdef", max_size=40), st.text(max_size=40)),
       domain=st.one_of(st.just("rentals.example.com"), st.text(max_size=40)), at=st.sampled_from(["@", "", "@@"]))
def test_uids_are_escaped_as_any_text(local, domain, at):
    uid = f"{local}{at}{domain}"  # our UIDs take the hash's shortcut; any other text the long way
    assert _escape_uid(uid) == escape_text(uid)
    assert render_events(Unit("7", "x"), [(uid or "u", D(2027, 1, 1), D(2027, 1, 2), "Reserved")], STAMP) == \
        reference_render(Unit("7", "x"), [(uid or "u", D(2027, 1, 1), D(2027, 1, 2), "Reserved")], STAMP)


@given(account=st.text(), unit_id=st.text(), domain=st.text(min_size=1),
       start=st.dates(max_value=dt.date(9999, 12, 30)), nights=st.integers(1, 400))
def test_a_feeds_uids_are_event_uid_from_one_hash_copied(account, unit_id, domain, start, nights):
    """render_feed names each event from a copy of the account's and unit's hash: the same
    UID event_uid gives (UIDs must never change, or importers see every stay cancelled)."""
    end = min(start + dt.timedelta(days=nights), dt.date(9999, 12, 31))
    block = FeedBlock(BlockedRange(start, end), BlockedRange(start, end))
    assert _uids(account, unit_id, domain)(block) == event_uid(account, unit_id, block, domain)


def test_an_empty_feed_needs_no_uid_hash():
    """A unit id Escapia sent with a lone surrogate (legal JSON) has no UID to hash when it has
    no blocks: its empty feed is still written, as before the hash was shared per feed."""
    feed = render_feed("a", Unit(id="1020-\ud800", name="Loft"), [], FeedSettings(),
                       dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert b"BEGIN:VEVENT" not in feed and b"X-WR-CALNAME:Loft" in feed


def test_a_uid_is_what_every_earlier_version_wrote():
    """Pinned: sha256 of "account NUL unit NUL first night NUL checkout", 32 hex digits."""
    stay = BlockedRange(dt.date(2026, 12, 1), dt.date(2026, 12, 4))
    assert event_uid("acme", "1020-7B", FeedBlock(stay, stay), "escapia-ical") == \
        "60b953bc7f3097f288bee98815544879@escapia-ical"
