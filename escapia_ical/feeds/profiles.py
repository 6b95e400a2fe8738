"""From a unit's blocks and their kinds to what one feed profile shows. Pure: no I/O.

A profile (config/profiles.py) starts from exactly the blocks the default feed is made of —
the publish policy's verdict, held nights included — and:

1. keeps the nights carrying an included kind (``include``); nights no answer covered
   (placeholders, kind unknown) are kept in every profile: they might be anything;
2. splits each block into events of one kind (a night with several kinds counts as the
   first of ``reservation, owner, maintenance, hold, other`` the profile includes), so a
   per-kind ``summary`` can name each;
3. adds ``buffer_before_days`` / ``buffer_after_days`` around each event. A buffer never
   covers a night twice: it stops where its neighbour (or the neighbour's own buffer)
   starts, so the two events touch and the nights between them are all covered; an
   "after" buffer goes first;
4. clips to the profile's window.

Events are computed from whole blocks, not window-clipped ones, so their dates (and UIDs)
do not change as the window moves a day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from escapia_ical.config.profiles import Profile
from escapia_ical.feeds import spans
from escapia_ical.feeds.kinds import KINDS, Labels
from escapia_ical.feeds.ranges import merge_ranges
from escapia_ical.feeds.spans import Span
from escapia_ical.model import BlockedRange, FeedWindow

UNKNOWN = "unknown"  # the kind of placeholder nights: shown by every profile
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, order=True, slots=True)
class ProfileBlock:
    """One event of a profile feed: ``shown`` (clipped to the window), ``origin`` (the whole
    event, buffers included: it names the UID) and the ``kind`` that names its summary."""

    shown: BlockedRange
    origin: BlockedRange
    kind: str


def profile_window(profile: Profile, today: dt.date, past_days: int, future_days: int) -> FeedWindow:
    """Return the profile's window (the feeds' one where the profile sets none)."""
    return FeedWindow.around(today, past_days if profile.past_days is None else profile.past_days,
                             future_days if profile.future_days is None else profile.future_days)


def profile_blocks(ranges: Iterable[BlockedRange], labels: Labels, unknown: Sequence[Span],
                   profile: Profile, window: FeedWindow) -> list[ProfileBlock]:
    """Given the whole ranges the default feed shows, their nights' ``labels`` (feeds/kinds.py)
    and the placeholder nights (``unknown``), return the profile's events in date order."""
    segments = [piece for block in merge_ranges(ranges)
                for piece in _by_kind(block, labels, unknown, profile.include)]
    before = dt.timedelta(days=profile.buffer_before_days)
    after = dt.timedelta(days=profile.buffer_after_days)
    events: list[ProfileBlock] = []
    previous_end: dt.date | None = None
    for index, (start, end, kind) in enumerate(segments):
        following = segments[index + 1][0] if index + 1 < len(segments) else None
        first = _shift(start, -before)
        if previous_end is not None:
            first = max(first, previous_end)
        last = _shift(end, after)
        if following is not None:
            last = min(last, following)
        previous_end = last
        origin = BlockedRange(first, last)
        shown_start, shown_end = max(first, window.start), min(last, window.end)
        if shown_end > shown_start:
            events.append(ProfileBlock(BlockedRange(shown_start, shown_end), origin, kind))
    return events


def nights(blocks: Iterable[ProfileBlock]) -> list[Span]:
    """Return the nights the events cover."""
    return spans.normalize((b.shown.start, b.shown.end) for b in blocks)


def _by_kind(block: BlockedRange, labels: Labels, unknown: Sequence[Span],
             include: Sequence[str]) -> list[tuple[dt.date, dt.date, str]]:
    """Return the block's nights the profile shows, as (first night, checkout, kind) pieces
    in date order, touching pieces of one kind joined."""
    whole = [(block.start, block.end)]
    left = spans.intersect(whole, unknown)
    pieces = [(s, e, UNKNOWN) for s, e in left]
    taken = list(left)
    for kind in KINDS:
        if kind not in include:
            continue
        mine = spans.subtract(spans.intersect(whole, labels.get(kind, ())), taken)
        pieces += [(s, e, kind) for s, e in mine]
        taken += mine
    joined: list[tuple[dt.date, dt.date, str]] = []
    for start, end, kind in sorted(pieces):
        if joined and joined[-1][2] == kind and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end, kind)
        else:
            joined.append((start, end, kind))
    return joined


def _shift(day: dt.date, by: dt.timedelta) -> dt.date:
    try:
        return day + by
    except OverflowError:
        return dt.date.max if by > dt.timedelta(0) else dt.date.min
