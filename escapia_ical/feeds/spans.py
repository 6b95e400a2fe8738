"""Sets of nights as sorted, disjoint, half-open spans: ``[(first night, day after the last)]``.

The publish policy compares *which* nights a feed blocked with which nights an answer
frees; doing that with spans instead of sets of dates keeps a 10,000-unit run cheap. Unlike
:func:`escapia_ical.feeds.ranges.merge_ranges` (which keeps back-to-back stays apart, as
feeds need), touching spans are joined here: these are sets of nights, not events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

Span = tuple[dt.date, dt.date]


def normalize(spans: Iterable[Span]) -> list[Span]:
    """Return the spans sorted and joined where they overlap or touch; empty ones dropped."""
    joined: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if joined and start <= joined[-1][1]:
            if end > joined[-1][1]:
                joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def subtract(spans: Iterable[Span], removed: Iterable[Span]) -> list[Span]:
    """Return the nights of ``spans`` that are not in ``removed``."""
    result: list[Span] = []
    cuts = normalize(removed)
    for start, end in normalize(spans):
        for cut_start, cut_end in cuts:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                result.append((start, cut_start))
            start = max(start, cut_end)
            if start >= end:
                break
        if start < end:
            result.append((start, end))
    return result


def intersect(spans: Iterable[Span], other: Iterable[Span]) -> list[Span]:
    """Return the nights in both."""
    left = normalize(spans)
    return subtract(left, subtract(left, other))


def union(*groups: Iterable[Span]) -> list[Span]:
    """Return the nights in any of the groups."""
    return normalize(span for group in groups for span in group)


def clip(spans: Iterable[Span], start: dt.date, end: dt.date) -> list[Span]:
    """Return the nights of ``spans`` from ``start`` up to, not including, ``end``."""
    return intersect(spans, [(start, end)])


def covered_from(spans: Iterable[Span], day: dt.date) -> dt.date:
    """Return the day after the last of the nights from ``day`` on that ``spans`` hold
    without a gap; ``day`` itself if they do not hold it."""
    for start, end in normalize(spans):
        if start <= day < end:
            return end
    return day


def count(spans: Iterable[Span]) -> int:
    """Return how many nights the spans hold."""
    return sum((end - start).days for start, end in normalize(spans))


def describe(spans: Iterable[Span], limit: int = 3) -> str:
    """Return the spans for an operator: ``2026-12-03..2026-12-05, 2027-01-10`` (first
    night .. last night; ``limit`` spans, then ``+N more``)."""
    joined = normalize(spans)
    words = [f"{s}" if e - s == dt.timedelta(days=1) else f"{s}..{e - dt.timedelta(days=1)}"
             for s, e in joined[:limit]]
    if len(joined) > limit:
        words.append(f"+{len(joined) - limit} more")
    return ", ".join(words)


def encode(spans: Iterable[Span]) -> str:
    """Return the spans compactly for state files: ``"2026-12-03/2026-12-06 ..."``."""
    return " ".join(f"{s.isoformat()}/{e.isoformat()}" for s, e in normalize(spans))


def decode(text: object) -> list[Span] | None:
    """Return the spans :func:`encode` wrote, or None if ``text`` is not such a string."""
    if not isinstance(text, str):
        return None
    try:
        pairs = [part.split("/") for part in text.split()]
        return normalize((dt.date.fromisoformat(s), dt.date.fromisoformat(e)) for s, e in pairs)
    except ValueError:
        return None
