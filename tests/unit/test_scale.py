"""Scale (issue 13): the FeedStamps index under every dict mutation, request slots and the
run deadline, the rendered DTSTAMP, and what the account log buffer keeps."""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ical_reference import reference_render
from loopback import RawServer, ok, trickle

from escapia_ical.config import HttpPolicy
from escapia_ical.errors import SourceError
from escapia_ical.feeds.render import render_events
from escapia_ical.model import Unit
from escapia_ical.sources import slots
from escapia_ical.sources.http import HttpClient
from escapia_ical.state import FeedStamps, names_of
from escapia_ical.sync.parallel import account_logs
from escapia_ical.sync.stamps import has_stored_ranges, stored_ranges


# -- 1. FeedStamps index -------------------------------------------------------------------
def stamps() -> FeedStamps:
    return FeedStamps({"a.ics": {"unit": "1"}, "b.ics": {"unit": "2"}})


@pytest.mark.parametrize("mutate", [
    lambda s: s.update({"c.ics": {"unit": "1"}}),
    lambda s: s.setdefault("c.ics", {"unit": "1"}),
    lambda s: s.__ior__({"c.ics": {"unit": "1"}}),
], ids=["update", "setdefault", "ior"])
def test_added_names_are_indexed(mutate):
    s = stamps()
    mutate(s)
    assert s.names_of("1") == names_of(dict(s), "1") == {"a.ics", "c.ics"}


@pytest.mark.parametrize("mutate", [lambda s: s.clear(), lambda s: s.popitem()], ids=["clear", "popitem"])
def test_removed_names_leave_the_index(mutate):
    s = stamps()
    mutate(s)
    assert s.names_of("2") == names_of(dict(s), "2")


def test_pickle_round_trip():
    assert pickle.loads(pickle.dumps(stamps())).names_of("1") == {"a.ics"}  # noqa: S301 - our own bytes


# -- 2. render ----------------------------------------------------------------------------
def test_dtstamp_before_year_1000_is_four_digits():
    unit, events = Unit("7", "x"), [("a@x", dt.date(2026, 1, 1), None, "R")]
    stamp = dt.datetime(999, 6, 1, tzinfo=dt.UTC)  # e.g. a hand-edited feeds.json "dtstamp"
    assert render_events(unit, events, stamp) == reference_render(unit, events, stamp)


# -- 3. slots -----------------------------------------------------------------------------
def test_waiting_for_a_slot_does_not_carry_a_request_past_the_deadline():
    server = RawServer(lambda conn, head, n: trickle(conn, ok(b"x" * 100), 0.3, server.closing))
    slots.set_request_slots(1)
    try:
        held = slots._slots
        held.acquire()  # another account's request in flight for 1 s
        threading.Timer(1.0, held.release).start()
        http = HttpClient(HttpPolicy(retry_attempts=1, connect_timeout=5, read_timeout=5, total_timeout=30))
        start = time.monotonic()
        http.deadline = start + 1.5
        with pytest.raises(SourceError):
            http.request("GET", server.url, operation="op")
        overrun = time.monotonic() - http.deadline
    finally:
        slots.set_request_slots(None)
        server.close()
    assert overrun < 0.3, f"ended {overrun:.2f} s after the run deadline"


def test_buffer_keeps_only_records_some_handler_would_write():
    root = logging.getLogger()
    old, others = root.level, list(root.handlers)
    for other in others:  # (pytest's capture handlers keep everything: the CLI's do not)
        root.removeHandler(other)
    root.setLevel(logging.DEBUG)
    h = logging.StreamHandler()
    h.setLevel(logging.WARNING)
    root.addHandler(h)
    try:
        with account_logs(["a"]):
            buf = root.handlers[-1]
            for i in range(1000):
                logging.getLogger("x").debug("noise %d", i)
            kept = len(buf.records)
    finally:
        root.removeHandler(h)
        root.setLevel(old)
        for other in others:
            root.addHandler(other)
    assert kept == 0, f"{kept} DEBUG records held in memory no handler will write"


_TOKENS = st.sampled_from(["2026-11-30", "2026-12-01", "2026-02-29", "2028-02-29", "20261201", "2026-1-01",
                           "", "x", "2026-12-01T00:00", "2027-01-01", "9999-12-31", "0001-01-01"])


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(_TOKENS, _TOKENS, st.sampled_from(["/", "//", "", "/x/"])), max_size=4),
       spaces=st.sampled_from([" ", "  ", "\n", " \t"]))
def test_has_stored_ranges_agrees_with_stored_ranges(pairs, spaces):
    """The steady tick's cheap check (no ranges built) says exactly what parsing says."""
    text = spaces.join(f"{a}{sep}{b}" for a, b, sep in pairs)
    for entry in ({"ranges": text}, {"ranges": [[a, b] for a, b, _ in pairs]}, {}, None, {"ranges": 3}):
        assert has_stored_ranges(entry) == (stored_ranges(entry) is not None), entry
