"""The shrink guard: never blank a calendar on the word of one answer.

Channels read a missing event as a cancellation, so a feed published empty or truncated by
mistake unblocks dates and invites double bookings. When a unit's calendar suddenly loses
all its future blocked nights, or more than a configured share of them, the sync fetches it
a second time and publishes only if both answers agree (sync.py). These are the pure parts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from escapia_ical.feeds.ranges import FeedBlock

StoredBlocks = list[list[str]]  # [[first night, checkout], ...] as ISO dates, kept in state


def future_nights(spans: Iterable[tuple[dt.date, dt.date]], today: dt.date) -> int:
    """Return how many nights from ``today`` on the half-open spans cover."""
    return sum(max(0, (end - max(start, today)).days) for start, end in spans)


def suspicious_shrink(previous: StoredBlocks | None, current: Sequence[FeedBlock], today: dt.date,
                      share: float) -> tuple[int, int] | None:
    """Return (nights before, nights now) if ``current`` lost all of ``previous``'s future
    blocked nights, or more than ``share`` of them; None if the change is unremarkable or
    nothing was published before (or the stored blocks cannot be read)."""
    try:
        before = future_nights(((dt.date.fromisoformat(s), dt.date.fromisoformat(e)) for s, e in previous),
                               today) if previous else 0
    except (TypeError, ValueError):
        return None
    after = future_nights(((b.shown.start, b.shown.end) for b in current), today)
    if before == 0 or after >= before:
        return None
    if after == 0 or before - after > share * before:
        return before, after
    return None
