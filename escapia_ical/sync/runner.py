"""One sync: every selected account and unit, from Escapia to published feeds.

config → source → blocked ranges → feed renderer → publisher → status. A failure is
recorded against the unit (or the account) it belongs to and the run goes on; nothing
failed ever replaces a published feed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Sequence

from escapia_ical.config import Account, Config
from escapia_ical.errors import EscapiaIcalError, SourceError
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.publish import clean_temp_files
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.sources import Source, make_source
from escapia_ical.state import AccountState
from escapia_ical.sync.context import (
    AccountResult,
    RunContext,
    SyncOptions,
    SyncReport,
    UnitOutcome,
    describe,
    fail,
)
from escapia_ical.sync.incremental import ChangeTracker
from escapia_ical.sync.units import (
    build_feed,
    fetch_blocks,
    fetch_units,
    previous_entry,
    roll_unit,
    stored_ranges,
)

log = logging.getLogger(__name__)


def run_sync(config: Config, options: SyncOptions) -> SyncReport:
    """Fetch, render and publish every selected feed; return what happened to each.

    Never raises for a failure of one unit or account: it is in the report. The caller
    holds the sync lock (unless this is a dry run, which writes no feed).
    """
    report = SyncReport()
    today = options.today or dt.date.today()
    run = RunContext(config, options, today, feed_window(config, today),
                     time.monotonic() + config.deadline_seconds)
    found_units: set[str] = set()
    for account in config.accounts:
        if options.accounts and account.name not in options.accounts:
            continue
        result = AccountResult(account.name)
        report.accounts[account.name] = result
        source = make_source(account, config.state_dir, sleep=options.sleep, deadline=run.deadline)
        try:
            _sync_account(run, account, source, result, found_units)
        except Exception as exc:  # noqa: BLE001 - one account must never stop the others
            result.error = describe(exc, account)
            log.error("%s: %s", account.name, result.error)
            log.debug("%s: details", account.name, exc_info=not isinstance(exc, EscapiaIcalError))
        finally:
            result.requests = Counter(source.requests_by_operation)
            result.responses = Counter(source.responses_by_status)
    report.unknown_units = [u for u in options.units if u not in found_units]
    for unit_id in report.unknown_units:
        log.error("unit %r is not distributed by any selected account", unit_id)
    return report

def feed_window(config: Config, today: dt.date | None = None) -> FeedWindow:
    """Return the nights feeds show: ``past_days`` back to ``future_days`` ahead of today
    (the host's local date)."""
    return FeedWindow.around(today or dt.date.today(), config.feeds.past_days, config.feeds.future_days)

def _sync_account(run: RunContext, account: Account, source: Source, result: AccountResult,
                  found_units: set[str]) -> None:
    config, options = run.config, run.options
    folder = config.output_dir / account.name
    state = AccountState(config.state_dir, account.name)
    if not options.dry_run:
        clean_temp_files(folder)
        clean_temp_files(state.folder)  # a crash mid-write may have left a token copy
    tracker = ChangeTracker(account, state) if _incremental(account) else None
    plan = (tracker.plan(source, options.now(), full=options.full, deadline=run.deadline)
            if tracker else None)
    listed = plan.units if plan else source.list_units()
    stamps = state.feed_stamps()
    if not listed and stamps and not options.force:
        # Units do not vanish all at once: more likely an API or distribution fault.
        # Their feeds stay as they are; --force accepts the empty list.
        raise SourceError(f"Escapia lists no units, but {len(stamps)} feeds were published "
                          "before; keeping them (--force accepts the empty list)")
    units = _select_units(account, listed, options.units, result)
    found_units.update(u.id for u in units)
    outcomes = [UnitOutcome(account.name, u.id, folder / account_feed_filename(account, u.id)) for u in units]
    result.units.extend(outcomes)
    # Without a change feed every unit is fetched; with one, only what it says changed, the
    # reconcile's share, and units whose stored calendar cannot be re-rendered.
    fetch = [(u, o) for u, o in zip(units, outcomes, strict=True)
             if plan is None or u.id in plan.fetch or not stored_ranges(stamps.get(o.path.name))]
    if plan and plan.reasons:
        log.info("%s: fetching %d of %d units (%s)", account.name, len(fetch), len(units),
                 ", ".join(f"{n} {why}" for why, n in plan.reasons.items()))
    succeeded: set[str] = set()
    options.progress.begin(account.name, len(units))
    try:
        fetched = {u.id for u, _ in fetch}
        fetch_units(run, account, source, fetch, stamps, succeeded)
        for unit, outcome in zip(units, outcomes, strict=True):
            if unit.id not in fetched:
                try:
                    roll_unit(run, account, unit, outcome, stamps)
                except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
                    fail(outcome, exc, account)
                options.progress.step()
    finally:
        options.progress.end()
        result.fetched = len(succeeded)
        if not options.dry_run:
            state.save_feed_stamps(stamps)
            if tracker and plan:
                tracker.commit(plan, succeeded, options.now())

def _incremental(account: Account) -> bool:
    return account.api == "hsapi" and account.mode == "incremental"

def preview_feed(config: Config, account: Account, source: Source, unit: Unit) -> bytes:
    """Return the feed a sync would write for ``unit`` now; nothing is written."""
    today = dt.date.today()
    run = RunContext(config, SyncOptions(), today, feed_window(config, today))
    stamps = AccountState(config.state_dir, account.name).feed_stamps()
    path = config.output_dir / account.name / account_feed_filename(account, unit.id)
    blocks = fetch_blocks(run, account, source, unit, None, guard=False)
    content, _ = build_feed(config, account, unit, blocks, previous_entry(stamps, unit.id, path),
                            dt.datetime.now(dt.UTC))
    return content


def _select_units(account: Account, listed: list[Unit], requested: Sequence[str],
                  result: AccountResult) -> list[Unit]:
    """Return the listed units this run publishes; configured ones not listed are errors."""
    by_id = {u.id: u for u in listed}
    if account.units == "all":
        chosen = list(listed)
    else:
        chosen = [by_id[i] for i in account.units if i in by_id]
        for missing in (i for i in account.units if i not in by_id):
            if requested and missing not in requested:
                continue
            outcome = UnitOutcome(account.name, missing)
            fail(outcome, SourceError("configured unit is not distributed by Escapia"), account)
            result.units.append(outcome)
    if requested:
        chosen = [u for u in chosen if u.id in requested]
    if not listed:
        log.warning("%s: Escapia lists no units for this account", account.name)
    return chosen
