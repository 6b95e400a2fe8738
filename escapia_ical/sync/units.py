"""One unit's feed: fetch its calendar (the feed window and the margin past it,
sync/margin.py), let the publish policy judge it, publish the verdict; and, for units the
change feed says are unchanged, roll the feed when the date moves — re-rendered only if
what it shows changes (sync/roll.py). Units of an account are fetched (and their losses
explained) by a bounded pool of threads (sync/pipeline.py); deciding, rendering and
publishing stay on the calling thread."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence

from escapia_ical.config import Account
from escapia_ical.errors import AuthError, DeadlineReached
from escapia_ical.feeds import spans
from escapia_ical.feeds.kinds import Claims
from escapia_ical.feeds.policy import Assessment, PublishPolicy, Verdict
from escapia_ical.feeds.publish import OpenFolders, current_bytes, feed_present, publish_feed
from escapia_ical.feeds.ranges import FeedBlock, clip_blocks, feed_blocks
from escapia_ical.feeds.render import iso
from escapia_ical.feeds.rotation import DEFAULT_GRACE_DAYS, old_names, update_old_names
from escapia_ical.feeds.spans import Span
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.sources import Source
from escapia_ical.sources.stop import leave_signals_to_main
from escapia_ical.sync.context import FeedStamps, RunContext, UnitOutcome, describe, fail
from escapia_ical.sync.margin import asked_window
from escapia_ical.sync.parallel import account_thread_name
from escapia_ical.sync.pipeline import Pipeline
from escapia_ical.sync.profiles import profiles_current, publish_profiles, unit_labels
from escapia_ical.sync.roll import plan_roll
from escapia_ical.sync.stamps import build_feed, previous_entry, previous_ranges, shown_until, stored_ranges

log = logging.getLogger(__name__)


def fetch_units(run: RunContext, account: Account, source: Source, fetch: list[tuple[Unit, UnitOutcome]],
                stamps: FeedStamps, succeeded: set[str], policy: PublishPolicy,
                claims: dict[str, Claims] | None = None) -> None:
    """Fetch units with up to ``max_concurrency`` requests in flight; publish each verdict as
    it comes, and the verdicts that wait for the account's breaker once all are in. Raise
    AuthError (after marking every unfinished unit) if the credentials stop working."""
    # What each unit's feed showed: looked up here (workers must not iterate `stamps` while
    # this thread adds to it), read into ranges only in the worker.
    previous = {u.id: (previous_entry(stamps, u.id, o.path), o.path) for u, o in fetch}
    refused: list[AuthError] = []  # set by the first worker whose credentials are refused
    asked = asked_window(run.window, account)  # the window and the margin past it
    future_days = run.config.feeds.future_days

    def fetch_one(unit: Unit) -> Assessment:
        if refused:
            raise refused[0]
        if time.monotonic() > run.deadline:
            raise DeadlineReached(f"not fetched: the run deadline ({run.config.deadline_seconds:g} s) "
                                  "passed; left for the next run")
        try:
            answer = source.calendar(unit, asked)
            entry, path = previous.pop(unit.id)
            return policy.assess(unit.id, previous_ranges(entry, path), answer,
                                 lambda nights: source.explain(unit, nights),
                                 shown_end=shown_until(entry, future_days))
        except AuthError as exc:
            refused.append(exc)
            raise

    auth_error: AuthError | None = None
    waiting: list[tuple[Unit, UnitOutcome]] = []  # verdicts the breaker decides
    # Units are handed out a few at a time (memory stays flat at 10,000 units, and each
    # answer is let go once it is published), to no more threads than keep this one busy
    # (sync/pipeline.py); on an exception here (Ctrl-C) no other unit starts, and the
    # caller saves state. Named after the account: their log lines are told with the
    # account's (sync/parallel.py).
    with Pipeline(lambda job: fetch_one(job[0]), account.http.max_concurrency,
                  f"{account_thread_name(account.name)}:units", leave_signals_to_main) as pipe:
        for (unit, outcome), assessment, error in pipe.run(fetch):
            try:
                if error is not None:
                    raise error
                verdict = policy.decide(assessment)
                if verdict.kind == "pending":
                    waiting.append((unit, outcome))
                else:
                    publish_verdict(run, account, unit, verdict, outcome, stamps, claims)
                succeeded.add(unit.id)
            except AuthError as exc:
                fail(outcome, exc, account)
                auth_error = auth_error or exc  # the rest fail fast (`refused`)
            except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
                fail(outcome, exc, account)
            finally:
                run.options.progress.step()
    log.debug("%s: %d units fetched by up to %d threads (%d at work at the fewest)", account.name,
              len(fetch), account.http.max_concurrency, pipe.fewest_workers)
    resolved = policy.finish(len(succeeded))
    for unit, outcome in waiting:
        try:
            publish_verdict(run, account, unit, resolved[unit.id], outcome, stamps, claims)
        except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
            succeeded.discard(unit.id)
            fail(outcome, exc, account)
    if auth_error is not None:
        for unit, outcome in fetch:
            if outcome.error is None and unit.id not in succeeded:
                outcome.error = describe(auth_error, account)
        raise auth_error


def publish_verdict(run: RunContext, account: Account, unit: Unit, verdict: Verdict, outcome: UnitOutcome,
                    stamps: FeedStamps, claims: dict[str, Claims] | None = None) -> None:
    """Publish what the policy decided for the unit (its default feed and, from the same
    blocks, its profile feeds), and say so where it matters."""
    outcome.verdict, outcome.uncovered = verdict.kind, verdict.uncovered
    through = max(verdict.through or run.window.end, run.window.end)
    stored = feed_blocks(verdict.ranges, FeedWindow(run.window.start, through))
    publish_unit(run, account, unit, stored, outcome, stamps, unknown=verdict.unknown, through=through,
                 claims=(claims or {}).get(unit.id))
    if verdict.kind == "explained":
        log.info("%s/%s: %s", account.name, unit.id, verdict.message)
    elif verdict.kind in ("accepted", "confirmed"):
        log.warning("%s/%s: %s", account.name, unit.id, verdict.message)


def publish_unit(run: RunContext, account: Account, unit: Unit, stored: Sequence[FeedBlock],
                 outcome: UnitOutcome, stamps: FeedStamps, unknown: list[Span] | None = None,
                 through: dt.date | None = None, claims: Claims | None = None,
                 digest: str | None = None) -> None:
    """Render the unit's feed from its merged blocks up to ``through`` (``stored``: the
    margin Escapia was asked about past the window's end too, which the state keeps and
    the feed never shows) and publish it (and its old names, and its profile feeds)
    unless this is a dry run. ``digest``: the content digest of the window's blocks, if
    known already."""
    blocks = clip_blocks(stored, run.window)
    previous = previous_entry(stamps, unit.id, outcome.path)  # keeps DTSTAMP across a rename
    content, stamp = build_feed(run.config, account, unit, blocks, previous, run.options.now(), unknown or (),
                                through, stored, digest)
    # iso(): one string shared by every record (a copy each was 2.8 MB at 50,000 units)
    stamp["day"] = iso(run.today)
    outcome.events = len(blocks)
    if run.options.dry_run:
        outcome.rewritten = run.options.force or current_bytes(outcome.path) != content
        _publish_profiles(run, account, unit, blocks, unknown or [], claims, outcome, stamp, previous)
        return
    outcome.rewritten = publish_feed(outcome.path, content, force=run.options.force,
                                     unsynced=run.unsynced.setdefault(account.name, set()),
                                     folders=run.folders.setdefault(account.name, OpenFolders()))
    if outcome.generation:  # kept with the name too, should names.json be lost
        stamp["generation"] = outcome.generation
    stamps[outcome.path.name] = stamp
    _publish_profiles(run, account, unit, blocks, unknown or [], claims, outcome, stamp, previous, content)
    update_old_names(outcome.path.parent, unit.id, outcome.path.name, content, stamp, stamps,
                     run.options.now(), _grace_days(account))
    log.info("%s/%s: %s (%d events)", account.name, unit.id,
             "written" if outcome.rewritten else "unchanged", outcome.events)


def roll_unit(run: RunContext, account: Account, unit: Unit, outcome: UnitOutcome,
              stamps: FeedStamps, claims: Claims | None = None, present: set[str] | None = None) -> None:
    """A unit the change feed says is unchanged: its feed is current. When the date has
    moved since it was rendered, its feeds are rolled to the new window from the stored
    ranges (sync/roll.py), with no API call: rendered again only if what one of them
    shows changes (or a file is gone), else only the entry's ``day`` moves. Its profile
    feeds are rendered again, from the same stored ranges, when their settings or the
    nights' kinds (``claims``) changed, or a file is gone. ``present``: the files in the
    feed's folder, if the caller listed it (:func:`feed_names`)."""
    previous = stamps[outcome.path.name]
    # (a folder there is an error to report)
    present = not run.options.force and feed_present(outcome.path, present)
    if present and previous.get("day") == run.today.isoformat():
        if account.profiles:
            blocks = feed_blocks(stored_ranges(previous) or [], run.window)
            labels = unit_labels(blocks, claims)
            if not profiles_current(run.config, account, unit.id, previous, outcome.generation, labels):
                outcome.events = previous.get("events", 0)
                unknown = spans.decode(previous.get("unknown", "")) or []
                _publish_profiles(run, account, unit, blocks, unknown, claims, outcome, previous,
                                  {"profiles": dict(previous.get("profiles") or {})})
                return
        outcome.events = previous.get("events", len(previous.get("blocks") or []))
        _refresh_old_names(run, account, unit, outcome, stamps, previous)
        return
    roll = plan_roll(run.config, account, unit, previous, run.today, run.window, claims, outcome.generation)
    if present and not roll.changed:
        # Nothing it shows changes: not rendered, not written; it now shows today's window.
        previous = {**previous, "day": iso(run.today)}
        if not run.options.dry_run:
            stamps[outcome.path.name] = previous
        outcome.events = previous.get("events", 0)
        _refresh_old_names(run, account, unit, outcome, stamps, previous)
        return
    publish_unit(run, account, unit, roll.stored, outcome, stamps, unknown=roll.unknown, through=roll.through,
                 claims=claims, digest=roll.digest)


def _refresh_old_names(run: RunContext, account: Account, unit: Unit, outcome: UnitOutcome,
                       stamps: FeedStamps, entry: dict) -> None:
    """Old names of a feed not rendered this run age out all the same (feeds/rotation.py)."""
    content = current_bytes(outcome.path) if old_names(stamps, unit.id, outcome.path.name) else None
    if content is not None and not run.options.dry_run:
        update_old_names(outcome.path.parent, unit.id, outcome.path.name, content, entry, stamps,
                         run.options.now(), _grace_days(account))


def _publish_profiles(run: RunContext, account: Account, unit: Unit, blocks: list[FeedBlock],
                      unknown: list[Span], claims: Claims | None, outcome: UnitOutcome,
                      entry: dict, previous: dict, default: bytes | None = None) -> None:
    if not account.profiles and not previous.get("profiles"):
        return
    outcome.profiles_rewritten = publish_profiles(
        run.config, account, unit, blocks, unknown, unit_labels(blocks, claims), entry,
        previous.get("profiles"), today=run.today, now=run.options.now(), generation=outcome.generation,
        force=run.options.force, dry_run=run.options.dry_run, grace_days=_grace_days(account),
        unsynced=run.unsynced.setdefault(account.name, set()),
        default=default if default is not None else current_bytes(outcome.path))


def _grace_days(account: Account) -> int:
    return account.feed_tokens.grace_days if account.feed_tokens else DEFAULT_GRACE_DAYS
