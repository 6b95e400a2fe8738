"""From the ranges a source reports to the blocks a feed shows.

Sources hand over :class:`BlockedRange` values already in our half-open form (first night,
checkout day), possibly overlapping, duplicated or straying outside the window. This module
merges and clips them; it knows nothing about HTTP or iCalendar.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from escapia_ical.model import BlockedRange, FeedWindow

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, order=True, slots=True)
class FeedBlock:
    """One event of a feed.

    ``shown`` is what the event covers (clipped to the window); ``origin`` is the whole
    merged block it came from, which names the event (its UID) so that the UID of a long
    stay does not change every day as the window's edge moves through it.
    """

    shown: BlockedRange
    origin: BlockedRange


def range_from_api(start: dt.date, end: dt.date, end_date: str) -> BlockedRange | None:
    """Given an API range and how its end is meant, return the half-open range.

    ``end_date`` is ``"exclusive"`` (``end`` is the checkout day) or ``"inclusive"``
    (``end`` is the last blocked night). A range whose start equals its end can only mean
    one blocked night in either reading. Return None for an end before the start (the
    caller counts and reports those, once per run) or a start no date can follow.
    """
    if end < start or start == dt.date.max:
        return None
    if (end == start or end_date == "inclusive") and end < dt.date.max:
        end = end + ONE_DAY  # (at date.max the last night is lost: it is past any window)
    return BlockedRange(start, end)


def merge_ranges(ranges: Iterable[BlockedRange]) -> list[BlockedRange]:
    """Return ``ranges`` sorted, with overlapping and duplicate ranges merged.

    Ranges that only touch (one stay's checkout day is the next one's arrival) stay
    separate: turnover and cleaning tools read those boundaries.
    """
    merged: list[BlockedRange] = []
    for current in sorted(ranges, key=_dates):  # (the dataclass's own __lt__ is 10 times slower)
        if merged and current.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = BlockedRange(last.start, max(last.end, current.end))
        else:
            merged.append(current)
    return merged


def _dates(blocked: BlockedRange) -> tuple[dt.date, dt.date]:
    return blocked.start, blocked.end


def feed_blocks(ranges: Iterable[BlockedRange], window: FeedWindow) -> list[FeedBlock]:
    """Given a unit's ranges, return the blocks its feed shows, in date order.

    Ranges are merged, then clipped to ``window``; a merged range entirely outside it is
    dropped (sources report answers that stray outside what was asked, once per run; here
    it is only a stored range the window has moved past).
    """
    blocks = []
    for block in merge_ranges(ranges):
        if block.start >= window.start and block.end <= window.end:  # (most: no new range to make)
            blocks.append(FeedBlock(block, block))
            continue
        start, end = max(block.start, window.start), min(block.end, window.end)
        if end > start:
            blocks.append(FeedBlock(BlockedRange(start, end), block))
    return blocks



def clip_blocks(blocks: Iterable[FeedBlock], window: FeedWindow) -> list[FeedBlock]:
    """Given blocks already merged (:func:`feed_blocks` for a wider window), return those
    ``window`` shows, clipped to it: the same as :func:`feed_blocks` for ``window``, without
    merging again."""
    clipped = []
    for block in blocks:
        if block.shown.start >= window.start and block.shown.end <= window.end:
            clipped.append(block)  # (most: within the narrower window already, so shown as it is)
            continue
        start, end = max(block.origin.start, window.start), min(block.origin.end, window.end)
        if end > start:
            clipped.append(FeedBlock(BlockedRange(start, end), block.origin))
    return clipped
