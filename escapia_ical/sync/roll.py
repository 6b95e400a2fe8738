"""The daily roll: what an unchanged unit's feeds show once the date has moved, from its
stored ranges alone (no request), and whether any of them shows something else.

Mostly nothing changes. The window moves a day; a feed changes only if a block touches an
edge — one crossing the window's start (its first shown night drops out) or one entering at
the far end (booked in the margin asked past the window, sync/margin.py) — or if the night
the window gains was never asked about (``through`` behind the window's new end: a state
from before the margin, or a unit not fetched for longer than the margin lasts), which is
published blocked as a placeholder. The same goes for each profile feed, whose window may
be shorter. A unit none of whose feeds changes is neither rendered nor written: its entry's
``day`` moves, nothing else (same bytes, same DTSTAMP, same mtime). Whether a feed changes is
told as the publisher tells it, by its content digest (feeds/render.py), so the roll never
skips a feed the publisher would have rewritten.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from escapia_ical.config import Account, Config
from escapia_ical.feeds import spans
from escapia_ical.feeds.kinds import Claims
from escapia_ical.feeds.ranges import FeedBlock, clip_blocks, feed_blocks
from escapia_ical.feeds.render import content_digest
from escapia_ical.feeds.spans import Span
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sync.profiles import profiles_current, profiles_unchanged, unit_labels
from escapia_ical.sync.stamps import asked_through, stored_ranges


@dataclass(frozen=True)
class Roll:
    """What a unit's feed is made of for the new day."""

    stored: list[FeedBlock]  # the stored ranges (and the placeholders of ``gained``), merged, up to
    #                          the window's end or ``through``: what the state keeps
    blocks: list[FeedBlock]  # of them, what the feed shows in the new window
    unknown: list[Span]  # placeholder nights: the stored ones and ``gained``
    through: dt.date  # as stored: the day after the last night Escapia was asked about
    gained: list[Span]  # nights of the window never asked about, published blocked
    changed: bool  # whether the default feed or a profile feed would show something else
    digest: str | None = None  # the content digest of ``blocks``, if it was needed


def plan_roll(config: Config, account: Account, unit: Unit, entry: dict[str, Any], today: dt.date,
              window: FeedWindow, claims: Claims | None = None, generation: int = 0) -> Roll:
    """Return what the unit's feeds (``entry``: its feeds.json entry) show on ``today``
    (``window``: today's feed window; ``claims``: its nights' kinds, for profiles) and
    whether that differs from what they show now. Profile files are looked for (a missing
    one is a change); nothing is written."""
    through = asked_through(entry, config.feeds.future_days) or window.end
    gained = spans.subtract([window.future(today)], [(window.start, through)])
    unknown = spans.union(spans.decode(entry.get("unknown", "")) or [], gained)
    ranges = [*(stored_ranges(entry) or []), *(BlockedRange(s, e) for s, e in gained)]
    stored = feed_blocks(ranges, FeedWindow(window.start, max(through, window.end)))
    blocks = clip_blocks(stored, window)
    if gained:
        return Roll(stored, blocks, unknown, through, gained, True)
    digest = content_digest(unit, blocks, config.feeds)
    changed = digest != entry.get("digest") or _profiles_change(config, account, unit, entry, blocks, unknown,
                                                                today, claims, generation)
    return Roll(stored, blocks, unknown, through, gained, changed, digest)


def _profiles_change(config: Config, account: Account, unit: Unit, entry: dict[str, Any],
                     blocks: list[FeedBlock], unknown: list[Span], today: dt.date, claims: Claims | None,
                     generation: int) -> bool:
    if not account.profiles and not entry.get("profiles"):
        return False
    labels = unit_labels(blocks, claims)
    return not (profiles_current(config, account, unit.id, entry, generation, labels)
                and profiles_unchanged(config, account, unit, blocks, unknown, labels, entry, today))
