"""One unit's feed: fetch it (guarded against sudden shrinks), render it, publish it, and,
for units the change feed says are unchanged, re-render it only when the date moves.
Units of an account are fetched by a bounded pool of threads; rendering and publishing
stay on the calling thread."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import icalendar

from escapia_ical.config import Account, Config
from escapia_ical.errors import AuthError, DeadlineReached, SourceError
from escapia_ical.feeds.guard import StoredBlocks, suspicious_shrink
from escapia_ical.feeds.publish import current_bytes, publish_feed
from escapia_ical.feeds.ranges import FeedBlock, feed_blocks
from escapia_ical.feeds.render import content_digest, render_feed
from escapia_ical.feeds.rotation import DEFAULT_GRACE_DAYS, old_names, update_old_names
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources import Source
from escapia_ical.sync.context import FeedStamps, RunContext, UnitOutcome, describe, fail

log = logging.getLogger(__name__)


def fetch_units(run: RunContext, account: Account, source: Source, fetch: list[tuple[Unit, UnitOutcome]],
                 stamps: FeedStamps, succeeded: set[str]) -> None:
    """Fetch units with up to ``max_concurrency`` requests in flight; render and publish each
    as it arrives. Raise AuthError (after marking every unfinished unit) if the credentials
    stop working."""
    # What each unit's feed showed, for the guard: looked up here (workers must not iterate
    # `stamps` while this thread adds to it), turned into blocks only in the worker.
    previous = {u.id: previous_entry(stamps, u.id, o.path) or o.path for u, o in fetch}
    guard = not run.options.force

    refused: list[AuthError] = []  # set by the first worker whose credentials are refused

    def fetch_one(unit: Unit) -> list[FeedBlock]:
        if refused:
            raise refused[0]
        if time.monotonic() > run.deadline:
            raise DeadlineReached(f"not fetched: the run deadline ({run.config.deadline_seconds:g} s) "
                                  "passed; left for the next run")
        try:
            shown = previous_blocks(previous.pop(unit.id), run.window) if guard else None
            return fetch_blocks(run, account, source, unit, shown, guard=guard)
        except AuthError as exc:
            refused.append(exc)
            raise

    auth_error: AuthError | None = None
    workers = account.http.max_concurrency
    queue = iter(fetch)
    # A sliding window of futures (not one per unit up front): memory stays flat at 10,000
    # units, and each result is let go once it is published.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fetch_one, u): (u, o) for u, o in itertools.islice(queue, 4 * workers)}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                unit, outcome = futures.pop(future)
                try:
                    publish_unit(run, account, unit, future.result(), outcome, stamps)
                    succeeded.add(unit.id)
                except AuthError as exc:
                    fail(outcome, exc, account)
                    auth_error = auth_error or exc  # the rest fail fast (`refused`)
                except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
                    fail(outcome, exc, account)
                finally:
                    run.options.progress.step()
                for next_unit, next_outcome in itertools.islice(queue, 1):
                    futures[pool.submit(fetch_one, next_unit)] = (next_unit, next_outcome)
    if auth_error is not None:
        for unit, outcome in fetch:
            if outcome.error is None and unit.id not in succeeded:
                outcome.error = describe(auth_error, account)
        raise auth_error

def previous_entry(stamps: FeedStamps, unit_id: str, path: Path) -> dict[str, Any]:
    """Return what state remembers of the unit's last published feed: under its current
    name, or an older one (after a feed-token rotation); {} if nothing."""
    entry = stamps.get(path.name)
    if not isinstance(entry, dict):
        entry = next((e for e in stamps.values() if isinstance(e, dict) and e.get("unit") == unit_id), None)
    return entry if isinstance(entry, dict) else {}


def previous_blocks(entry_or_path: dict[str, Any] | Path, window: FeedWindow) -> StoredBlocks | None:
    """Return the blocks last published for a unit, for the shrink guard: from its state
    entry (found by unit id, so a rotated feed token cannot switch the guard off), else read
    back from the published file at ``path`` (state lost); None if there is none."""
    if isinstance(entry_or_path, dict):
        if isinstance(entry_or_path.get("blocks"), list):  # state written by 0.1.0 before this
            return entry_or_path["blocks"]
        ranges = stored_ranges(entry_or_path)
        if ranges is not None:
            return [[max(r.start, window.start).isoformat(), min(r.end, window.end).isoformat()]
                    for r in ranges if r.end > window.start and r.start < window.end]
        return None
    path = entry_or_path
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
        return [[e.decoded("dtstart").isoformat(), e.decoded("dtend").isoformat()]
                for e in calendar.walk("VEVENT")]
    except Exception:  # noqa: BLE001 - no file, or not ours to read: nothing to compare with
        return None


def fetch_blocks(run: RunContext, account: Account, source: Source, unit: Unit,
                 previous: StoredBlocks | None, *, guard: bool = True) -> list[FeedBlock]:
    """Fetch a unit's calendar and return the blocks its feed shows.

    With ``guard``, a calendar that shrank suspiciously since ``previous`` (the blocks last
    published) is fetched again, and kept only if both answers agree. Raise SourceError
    if they disagree: the last published feed then stays as it is.
    """
    where = f"{account.name}/{unit.id}"
    blocks = feed_blocks(source.blocked_ranges(unit, run.window), run.window, where=f"{where}: ")
    shrink = suspicious_shrink(previous, blocks, run.today, run.config.feeds.shrink_guard) if guard else None
    if shrink is None:
        return blocks
    before, after = shrink
    again = feed_blocks(source.blocked_ranges(unit, run.window, fresh=True), run.window, where=f"{where}: ")
    if again != blocks:
        raise SourceError(f"future blocked nights dropped from {before} to {after}, and a second "
                          "fetch disagreed; keeping the last feed")
    log.warning("%s: future blocked nights dropped from %d to %d; confirmed by a second fetch, "
                "publishing", where, before, after)
    return blocks

def build_feed(config: Config, account: Account, unit: Unit, blocks: Sequence[FeedBlock],
               previous: dict[str, Any], now: dt.datetime) -> tuple[bytes, dict[str, Any]]:
    """Render one unit's feed; return (bytes, its new stamp entry).

    DTSTAMP is the time the feed's content last changed: kept from ``previous`` while the
    content digest is the same, so an unchanged calendar renders to the same bytes.
    """
    digest = content_digest(unit, blocks, config.feeds)
    dtstamp = now.replace(microsecond=0)
    if previous.get("digest") == digest:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            dtstamp = dt.datetime.fromisoformat(previous["dtstamp"])
    content = render_feed(account.name, unit, blocks, config.feeds, dtstamp)
    # The whole ranges, compactly ("first/checkout ..."): the guard and the daily roll
    # derive what they need from them, and 10,000 units keep state small.
    origins = sorted({(b.origin.start, b.origin.end) for b in blocks})
    return content, {"unit": unit.id, "digest": digest, "dtstamp": dtstamp.isoformat(),
                     "events": len(blocks), "ranges": " ".join(f"{s}/{e}" for s, e in origins)}

def publish_unit(run: RunContext, account: Account, unit: Unit, blocks: list[FeedBlock],
                  outcome: UnitOutcome, stamps: FeedStamps) -> None:
    """Render the unit's feed and publish it (and its old names) unless this is a dry run."""
    previous = previous_entry(stamps, unit.id, outcome.path)  # keeps DTSTAMP across a rename
    content, stamp = build_feed(run.config, account, unit, blocks, previous, run.options.now())
    stamp["day"] = run.today.isoformat()
    outcome.events = len(blocks)
    if run.options.dry_run:
        outcome.rewritten = run.options.force or current_bytes(outcome.path) != content
        return
    outcome.rewritten = publish_feed(outcome.path, content, force=run.options.force)
    stamps[outcome.path.name] = stamp
    update_old_names(outcome.path.parent, unit.id, outcome.path.name, content, stamp, stamps,
                     run.options.now(), _grace_days(account))
    log.info("%s/%s: %s (%d events)", account.name, unit.id,
             "written" if outcome.rewritten else "unchanged", outcome.events)

def roll_unit(run: RunContext, account: Account, unit: Unit, outcome: UnitOutcome,
               stamps: FeedStamps) -> None:
    """A unit the change feed says is unchanged: its feed is current. Only when the date
    has moved since it was rendered (or its file is gone) is it rendered again, from the
    stored ranges, for the new window: the daily roll needs no API call."""
    previous = stamps[outcome.path.name]
    if previous.get("day") == run.today.isoformat() and not run.options.force and outcome.path.exists():
        outcome.events = previous.get("events", len(previous.get("blocks") or []))
        content = current_bytes(outcome.path) if old_names(stamps, unit.id, outcome.path.name) else None
        if content is not None and not run.options.dry_run:  # old names age out all the same
            update_old_names(outcome.path.parent, unit.id, outcome.path.name, content, previous, stamps,
                             run.options.now(), _grace_days(account))
        return
    ranges = stored_ranges(previous) or []
    publish_unit(run, account, unit, feed_blocks(ranges, run.window), outcome, stamps)

def _grace_days(account: Account) -> int:
    return account.feed_tokens.grace_days if account.feed_tokens else DEFAULT_GRACE_DAYS

def stored_ranges(entry: object) -> list[BlockedRange] | None:
    """Return the whole ranges a stored feed entry came from, or None if it has none."""
    ranges = entry.get("ranges") if isinstance(entry, dict) else None
    if isinstance(ranges, str):  # "first/checkout first/checkout ..."
        ranges = [pair.split("/") for pair in ranges.split()]
    if not isinstance(ranges, list):
        return None
    try:
        return [BlockedRange(dt.date.fromisoformat(s), dt.date.fromisoformat(e)) for s, e in ranges]
    except (TypeError, ValueError):
        return None
