"""The shrink guard's rule: which changes need a second opinion."""

import datetime as dt

import pytest

from escapia_ical.feeds.guard import future_nights, suspicious_shrink
from escapia_ical.feeds.ranges import feed_blocks
from escapia_ical.model import BlockedRange, FeedWindow

TODAY = dt.date(2026, 11, 23)
WINDOW = FeedWindow(TODAY - dt.timedelta(days=7), TODAY + dt.timedelta(days=730))


def store_blocks(feed_blocks_):
    return [[b.shown.start.isoformat(), b.shown.end.isoformat()] for b in feed_blocks_]


def blocks(*spans):
    """Blocks from (first night offset, checkout offset) pairs relative to TODAY."""
    return feed_blocks([BlockedRange(TODAY + dt.timedelta(days=a), TODAY + dt.timedelta(days=b)) for a, b in spans],
                       WINDOW)


def test_future_nights_count_only_from_today():
    assert future_nights([(TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=2))], TODAY) == 2
    assert future_nights([(TODAY - dt.timedelta(days=3), TODAY)], TODAY) == 0


@pytest.mark.parametrize(("before", "after", "share", "expected"), [
    ([(1, 11)], [], 0.5, (10, 0)),  # all lost
    ([(1, 11)], [(1, 5)], 0.5, (10, 4)),  # lost 6 of 10 > 50 %
    ([(1, 11)], [(1, 6)], 0.5, None),  # lost exactly 50 %: fine
    ([(1, 11)], [(1, 10)], 0.0, (10, 9)),  # share 0: any loss needs a second opinion
    ([(1, 11)], [(1, 2)], 1.0, None),  # share 1: only losing everything does
    ([(1, 11)], [], 1.0, (10, 0)),
    ([(1, 11)], [(20, 40)], 0.5, None),  # moved, not lost
    ([(-5, 0)], [], 0.5, None),  # only past nights before: nothing future was lost
    ([(-5, 3)], [(-5, 0)], 0.5, (3, 0)),  # the future part vanished
])
def test_suspicious_shrink(before, after, share, expected):
    assert suspicious_shrink(store_blocks(blocks(*before)), blocks(*after), TODAY, share) == expected


def test_nothing_published_before_or_unreadable_state_is_not_suspicious():
    assert suspicious_shrink(None, blocks(), TODAY, 0.5) is None
    assert suspicious_shrink([["garbage", "x"]], blocks(), TODAY, 0.5) is None
    assert suspicious_shrink([[1, 2]], blocks(), TODAY, 0.5) is None
