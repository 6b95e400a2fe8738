"""Access log lines -> feed fetches by channel: the shipped format, combined, and garbage."""

import datetime as dt

import pytest

from escapia_ical.channels.agents import CHANNEL_AGENTS, CHANNELS, OTHER, channel_of
from escapia_ical.channels.logformat import Tally, parse_line, scan

FEEDS = {b"/acme/101.ics": ("acme", "101"), b"/acme/102-0123456789abcdef0123456789abcdef.ics": ("acme", "102")}


def shipped(time="2026-05-01T12:00:00+02:00", method="GET", path="/acme/101.ics", status="200",
            agent="Airbnb Calendar Sync") -> bytes:
    return "\t".join((time, method, path, status, "1234", agent)).encode()


def combined(path="/acme/101.ics?x=1", agent="Google-Calendar-Importer", status="304",
             time="01/May/2026:10:00:00 +0000") -> bytes:
    return f'203.0.113.9 - - [{time}] "GET {path} HTTP/1.1" {status} 0 "-" "{agent}"'.encode()


def test_a_shipped_line_parses_to_utc_time_path_status_and_agent():
    request = parse_line(shipped() + b"\n")
    assert request.time == dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert (request.method, request.path, request.status) == ("GET", "/acme/101.ics", 200)
    assert request.user_agent == "Airbnb Calendar Sync"
    assert parse_line(shipped(agent="-")).user_agent == ""  # nginx writes "-" for no header


def test_a_combined_line_parses_and_its_address_is_not_kept():
    request = parse_line(combined())
    assert request.time == dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert (request.path, request.status, request.user_agent) == ("/acme/101.ics", 304, "Google-Calendar-Importer")
    assert "203.0.113.9" not in repr(request)
    east = parse_line(combined(time="01/May/2026:12:30:00 +0230"))
    assert east.time == dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("line", [
    b"", b"garbage", b"a\tb\tc", shipped(time="yesterday"), shipped(time="2026-05-01T12:00:00"),  # no zone
    shipped(status="2000"), shipped(status="abc"), combined(time="01/Mai/2026:10:00:00 +0000"),
    combined(time="01/May/2026:10:00:00 0000"), b'1.2.3.4 - - [x] "GET /" 200', "\t".join("é" * 6).encode(),
    b"\xff\xfe\t\x00" * 3,
])
def test_malformed_lines_are_none_never_an_exception(line):
    assert parse_line(line) is None


def test_scan_counts_fetches_per_feed_and_channel_and_skips_the_rest():
    block = b"\n".join([
        shipped(), shipped(time="2026-05-01T12:05:00+02:00", status="304"),
        shipped(path="/acme/102-0123456789abcdef0123456789abcdef.ics", agent="Mozilla/5.0 (Windows NT 10.0)"),
        combined(),
        shipped(path="/acme/999.ics"), shipped(path="/"), shipped(method="POST"),  # not a feed fetch: ignored
        shipped(time="garbage"), b"not a log line", b"\x00\x01 binary",  # malformed
        b"",
    ]) + b"\n"
    tally = Tally()
    scan(block, FEEDS, tally)
    assert (tally.lines, tally.ignored, tally.malformed) == (10, 3, 3)
    airbnb = tally.fetches[(("acme", "101"), "airbnb")]
    assert airbnb.count == 2 and airbnb.status == 304
    assert airbnb.last - airbnb.first == 300
    assert tally.fetches[(("acme", "101"), "google-calendar")].status == 304
    assert tally.fetches[(("acme", "102"), OTHER)].count == 1
    assert len(tally.fetches) == 3


def test_an_older_line_read_later_does_not_move_the_last_fetch_back():
    tally = Tally()
    scan(shipped(time="2026-05-01T12:05:00+00:00", status="200") + b"\n"
         + shipped(time="2026-05-01T12:00:00+00:00", status="404"), FEEDS, tally)
    fetch = tally.fetches[(("acme", "101"), "airbnb")]
    assert (fetch.status, fetch.count, fetch.last - fetch.first) == (200, 2, 300)


@pytest.mark.parametrize(("agent", "channel"), [
    ("Google-Calendar-Importer", "google-calendar"),
    ("Mozilla/5.0 (compatible; Google-Calendar-Importer)", "google-calendar"),
    ("Airbnb/1.0 (calendar import)", "airbnb"),
    ("HomeAway iCal Importer", "vrbo"), ("Vrbo-Calendar/2", "vrbo"), ("Expedia Partner Central", "vrbo"),
    ("Booking.com iCal", "booking"), ("TripAdvisor Rentals", "tripadvisor"), ("FlipKey", "tripadvisor"),
    ("Hostaway/1.0", "hostaway"), ("Guesty-Sync", "guesty"), ("Lodgify", "lodgify"), ("OwnerRez/3.0", "ownerrez"),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", OTHER), ("curl/8.5.0", OTHER), ("", OTHER),
])
def test_the_user_agent_table_names_each_channel(agent, channel):
    assert channel_of(agent) == channel


def test_the_table_is_one_place_with_unique_names_and_lower_case_needles():
    names = [name for name, _ in CHANNEL_AGENTS]
    assert len(set(names)) == len(names) and CHANNELS[-1] == OTHER
    assert all(needle == needle.lower() for _, needles in CHANNEL_AGENTS for needle in needles)
