"""What state remembers of each published feed (``feeds.json``: file name -> entry), and
how a feed is rendered so that an unchanged calendar keeps its bytes.

An entry holds the unit, the content digest, DTSTAMP, the number of events, the whole
ranges the feed shows and those of the margin asked past the window's end (sync/margin.py),
as one short text (feeds/range_text.py), the day it shows the window of (``day``), the
day after the last night Escapia's answer covered from the window's end on (``through``)
and, when Escapia's answer did not cover the whole window, the placeholder nights published
as blocked although nothing said they were booked (``unknown``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from escapia_ical.config import Account, Config
from escapia_ical.feeds import range_text, spans
from escapia_ical.feeds.publish import current_bytes
from escapia_ical.feeds.ranges import FeedBlock
from escapia_ical.feeds.render import content_digest, render_feed
from escapia_ical.model import BlockedRange, Unit
from escapia_ical.state import names_of
from escapia_ical.sync.context import FeedStamps


def previous_entry(stamps: FeedStamps, unit_id: str, path: Path) -> dict[str, Any]:
    """Return what state remembers of the unit's last published feed: under its current
    name, or an older one (after a feed-token rotation); {} if nothing."""
    entry = stamps.get(path.name)
    if not isinstance(entry, dict):
        entry = next((stamps[n] for n in sorted(names_of(stamps, unit_id))), None)
    return entry if isinstance(entry, dict) else {}


def previous_ranges(entry: dict[str, Any], path: Path) -> list[BlockedRange] | None:
    """Return the ranges a unit's feed showed that stood for known blocks, for the publish
    policy: from its state entry (found by unit id, so a rotated feed token cannot hide
    it) without the placeholder nights; else — state lost, or its ranges unreadable — read
    back from the published file at ``path``; None if there is neither."""
    ranges = stored_ranges(entry)
    if ranges is None and isinstance(entry.get("blocks"), list):  # state of 0.1.0
        ranges = _pairs(entry["blocks"])
    if ranges is not None:
        unknown = spans.decode(entry.get("unknown", "")) or []
        return [BlockedRange(s, e) for r in ranges for s, e in spans.subtract([(r.start, r.end)], unknown)]
    content = current_bytes(path)
    if content is None:  # no file (a cold sync's every unit): not even icalendar's import
        return None
    try:
        import icalendar  # here: only a feed without a record is read back (70 ms of import a tick)

        calendar = icalendar.Calendar.from_ical(content)
        return [BlockedRange(e.decoded("dtstart"), e.decoded("dtend")) for e in calendar.walk("VEVENT")]
    except Exception:  # noqa: BLE001 - no file, or not ours to read: nothing to compare with
        return None


def stored_ranges(entry: object) -> list[BlockedRange] | None:
    """Return the whole ranges a stored feed entry came from, or None if it has none."""
    ranges = entry.get("ranges") if isinstance(entry, dict) else None
    if isinstance(ranges, str):  # (or as written before: "first/checkout first/checkout ...")
        compact = range_text.is_compact(ranges)
        pairs = range_text.decode(ranges) if compact else range_text.decode_older(ranges)
        return None if pairs is None else [BlockedRange(s, e) for s, e in pairs]
    return _pairs(ranges)


def has_stored_ranges(entry: object) -> bool:
    """Whether ``stored_ranges(entry)`` is not None, without building the ranges: a steady
    tick asks this of every unit (building them took 0.6 CPU s at 10,000 units). Ranges in
    the older form are upgraded when read (state.py): only those that cannot be read are
    still in it, and are read in full here."""
    ranges = entry.get("ranges") if isinstance(entry, dict) else None
    if isinstance(ranges, str) and range_text.is_compact(ranges):
        return range_text.readable(ranges)
    return stored_ranges(entry) is not None


_DAYS: dict[str, dt.date | None] = {}  # the dates read so far (a few thousand cover every unit)


def _day(text: str) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if len(_DAYS) < 100_000:
        _DAYS[text] = day
    return day


def _pairs(ranges: Any) -> list[BlockedRange] | None:
    if not isinstance(ranges, list):
        return None
    days, pairs = _DAYS, []
    try:
        for first, checkout in ranges:  # the day cache: the roll reads every unit's ranges
            start = days[first] if first in days else _day(first)
            end = days[checkout] if checkout in days else _day(checkout)
            if start is None or end is None:
                return None
            pairs.append(BlockedRange(start, end))
    except (TypeError, ValueError):  # not pairs, or not strings
        return None
    return pairs


def build_feed(config: Config, account: Account, unit: Unit, blocks: Sequence[FeedBlock],
               previous: dict[str, Any], now: dt.datetime, unknown: Sequence[spans.Span] = (),
               through: dt.date | None = None, stored: Sequence[FeedBlock] | None = None,
               digest: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """Render one unit's feed; return (bytes, its new stamp entry). The entry keeps the
    whole ranges of ``stored`` (the blocks up to ``through``: the margin's too; default
    ``blocks``). ``digest``: the blocks' content digest, if the caller has it already.

    DTSTAMP is the time the feed's content last changed: kept from ``previous`` while the
    content digest is the same, so an unchanged calendar renders to the same bytes.
    """
    digest = digest or content_digest(unit, blocks, config.feeds)
    dtstamp = now.replace(microsecond=0)
    if previous.get("digest") == digest:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            dtstamp = dt.datetime.fromisoformat(previous["dtstamp"])
    content = render_feed(account.name, unit, blocks, config.feeds, dtstamp)
    # The whole ranges, compactly (feeds/range_text.py): the policy and the daily roll
    # derive what they need from them, and 10,000 units keep state small.
    origins = sorted({(b.origin.start, b.origin.end) for b in (blocks if stored is None else stored)})
    entry = {"unit": unit.id, "digest": digest, "dtstamp": dtstamp.isoformat(), "events": len(blocks),
             "ranges": range_text.encode(origins)}
    if unknown:
        entry["unknown"] = spans.encode(unknown)
    if through is not None:
        entry["through"] = through.isoformat()
    return content, entry


def shown_until(entry: dict[str, Any], future_days: int) -> dt.date | None:
    """Return the end of the window the feed shows: its ``day`` plus ``future_days``; None
    if the entry has no readable day. Stored nights from there on (the margin) were never
    in the feed."""
    try:
        return dt.date.fromisoformat(entry.get("day")) + dt.timedelta(days=future_days)
    except (TypeError, ValueError, OverflowError):
        return None


def asked_through(entry: dict[str, Any], future_days: int) -> dt.date | None:
    """Return the day after the last night Escapia was asked about, from the unit's last
    fetch: recorded (``through``: the window's end, or past it by the margin the answer
    covered), or (state of 0.1.0) the day it was rendered plus ``future_days``; None if
    unknown."""
    for value, days in ((entry.get("through"), 0), (entry.get("day"), future_days)):
        try:
            return dt.date.fromisoformat(value) + dt.timedelta(days=days)
        except (TypeError, ValueError, OverflowError):
            continue
    return None
