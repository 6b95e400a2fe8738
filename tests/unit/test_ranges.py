"""Blocked ranges: API end-date semantics, merging, window clipping."""

import copy
import dataclasses
import datetime as dt
import logging
import pickle

import pytest

from escapia_ical.feeds.profiles import ProfileBlock
from escapia_ical.feeds.ranges import FeedBlock, feed_blocks, merge_ranges, range_from_api
from escapia_ical.model import BlockedRange, FeedWindow

D = dt.date


def r(a, b):
    return BlockedRange(D.fromisoformat(a), D.fromisoformat(b))


WINDOW = FeedWindow(D(2026, 11, 16), D(2028, 11, 22))


@pytest.mark.parametrize("mode, start, end, expected", [
    ("exclusive", "2026-12-01", "2026-12-04", ("2026-12-01", "2026-12-04")),
    ("inclusive", "2026-12-01", "2026-12-04", ("2026-12-01", "2026-12-05")),
    ("exclusive", "2026-12-01", "2026-12-01", ("2026-12-01", "2026-12-02")),  # one night
    ("inclusive", "2026-12-01", "2026-12-01", ("2026-12-01", "2026-12-02")),  # one night
    ("inclusive", "2026-12-31", "2026-12-31", ("2026-12-31", "2027-01-01")),  # year end
    ("inclusive", "2028-02-28", "2028-02-29", ("2028-02-28", "2028-03-01")),  # leap day
])
def test_range_from_api_reads_the_end_as_configured(mode, start, end, expected):
    assert range_from_api(D.fromisoformat(start), D.fromisoformat(end), mode) == r(*expected)


def test_end_before_start_is_skipped_for_the_source_to_count():
    assert range_from_api(D(2026, 12, 5), D(2026, 12, 1), "exclusive") is None
    assert range_from_api(D.max, D.max, "exclusive") is None


def test_overlapping_and_duplicate_ranges_merge():
    merged = merge_ranges([r("2026-12-05", "2026-12-09"), r("2026-12-01", "2026-12-06"),
                           r("2026-12-01", "2026-12-06"), r("2026-12-07", "2026-12-08")])
    assert merged == [r("2026-12-01", "2026-12-09")]


def test_back_to_back_stays_stay_separate():
    stays = [r("2026-12-04", "2026-12-06"), r("2026-12-01", "2026-12-04"), r("2026-12-06", "2026-12-07")]
    assert merge_ranges(stays) == sorted(stays)


def test_blocks_are_clipped_to_the_window_but_named_by_the_whole_stay():
    crossing_start = r("2026-11-10", "2026-11-20")
    crossing_end = r("2028-11-20", "2028-12-05")
    blocks = feed_blocks([crossing_start, crossing_end], WINDOW)
    assert [b.shown for b in blocks] == [r("2026-11-16", "2026-11-20"), r("2028-11-20", "2028-11-22")]
    assert [b.origin for b in blocks] == [crossing_start, crossing_end]


def test_ranges_outside_the_window_are_dropped_quietly(caplog):
    far_past, far_future = r("2026-10-01", "2026-10-05"), r("2029-01-01", "2029-01-05")
    touching = r("2026-11-10", "2026-11-16")  # checkout on the window's first day
    with caplog.at_level(logging.DEBUG):
        assert feed_blocks([far_past, far_future, touching], WINDOW) == []
    assert caplog.records == []  # sources report answers that stray, once per run


def test_blocked_nights_cover_exactly_the_shown_ranges():
    blocks = feed_blocks([r("2026-12-30", "2027-01-02"), r("2027-01-02", "2027-01-03")], WINDOW)
    nights = {b.shown.start + dt.timedelta(days=i) for b in blocks for i in range(b.shown.nights)}
    assert nights == {D(2026, 12, 30), D(2026, 12, 31), D(2027, 1, 1), D(2027, 1, 2)}


def test_blocked_range_rejects_empty_ranges():
    with pytest.raises(ValueError):
        BlockedRange(D(2026, 1, 2), D(2026, 1, 2))


def test_absurd_dates_never_overflow(caplog):
    top = dt.date.max
    assert range_from_api(top, top, "exclusive") is None
    assert range_from_api(top - dt.timedelta(days=3), top, "inclusive") == BlockedRange(top - dt.timedelta(days=3), top)
    assert feed_blocks([BlockedRange(D(1, 1, 1), top)], WINDOW)[0].shown == BlockedRange(WINDOW.start, WINDOW.end)


@pytest.mark.parametrize("value", [
    r("2026-12-01", "2026-12-04"),
    FeedBlock(r("2026-12-01", "2026-12-04"), r("2026-11-28", "2026-12-04")),
    ProfileBlock(r("2026-12-01", "2026-12-04"), r("2026-11-30", "2026-12-05"), "reservation"),
])
def test_ranges_and_blocks_stay_immutable_values(value):
    """Slotted (a million are made in a cold sync of 10,000 units): still frozen, equal and
    hashed by value, ordered, copied and pickled whole."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, dataclasses.fields(value)[0].name, r("2027-01-01", "2027-01-02"))
    with pytest.raises((AttributeError, TypeError)):  # (a TypeError on 3.11 with slots)
        value.note = "x"
    twin = pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes
    assert twin == value and hash(twin) == hash(value) and copy.deepcopy(value) == value
    assert dataclasses.replace(value) == value and not hasattr(value, "__dict__")
    assert sorted([value, twin]) == [value, value]


def test_a_range_still_refuses_to_be_empty():
    with pytest.raises(ValueError, match="empty or inverted"):
        BlockedRange(D(2026, 12, 4), D(2026, 12, 4))
    assert r("2026-12-01", "2026-12-04").nights == 3
