"""One sync: every selected account and unit, from Escapia to published feeds.

config → source → blocked ranges → publish policy → feed renderer → publisher → status.
Each account is synced under its own lock; a failure is recorded against the unit (or the
account) it belongs to and the run goes on; nothing failed ever replaces a published feed,
and no night leaves a feed unless the publish policy (feeds/policy.py) says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from escapia_ical.config import Account, Config
from escapia_ical.errors import EscapiaIcalError, LockHeld, PublishError, SourceError, StateError
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.feeds.lifecycle import mark_retired, vanished_at_once
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.policy import PublishPolicy
from escapia_ical.feeds.publish import clean_temp_files, feed_names, sync_folders
from escapia_ical.feeds.ranges import feed_blocks
from escapia_ical.feeds.rotation import UnitNames
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources import Source, make_source
from escapia_ical.sources.slots import set_request_slots
from escapia_ical.sources.stop import leave_signals_to_main, stop_requested
from escapia_ical.state import AccountState, state_transaction
from escapia_ical.sync.context import (
    AccountResult,
    Progress,
    RunContext,
    SyncOptions,
    SyncReport,
    UnitOutcome,
    describe,
    fail,
)
from escapia_ical.sync.identity import claim_state
from escapia_ical.sync.incremental import ChangeTracker
from escapia_ical.sync.leases import confirm_lease
from escapia_ical.sync.lock import STUCK_MARGIN, account_lock
from escapia_ical.sync.margin import asked_window
from escapia_ical.sync.notices import say_once
from escapia_ical.sync.parallel import account_logs, account_thread_name
from escapia_ical.sync.profiles import profile_folders
from escapia_ical.sync.quiet import check_listing, listing_truncated, prefetch_batch, quiet_tracker
from escapia_ical.sync.stamps import build_feed, has_stored_ranges, previous_entry
from escapia_ical.sync.units import fetch_units, roll_unit

log = logging.getLogger(__name__)
MAX_LINES = 5  # held or uncovered units named one per line; the rest are counted
REASONS = {  # why an incremental plan fetches units, as -v says it
    "changed": "changed in Escapia", "pending": "retried (their last fetch failed or "
    "was cut short)", "held": "held by the publish policy (checked again)", "new": "new",
    "reconcile": "due for their periodic reconcile", "full": "full sync", "many changes": "(many changes: "
    "all)", "work orders": "whose work orders changed", "settling": "read again (LastUpdated has whole "
    "seconds)",
}


def run_sync(config: Config, options: SyncOptions, report: SyncReport | None = None,
             on_start: Callable[[], None] | None = None) -> SyncReport:
    """Fetch, judge and publish every selected feed; fill ``report`` (a new one if None)
    with what happened to each, and return it.

    Each account is synced under its own lock (not for a dry run, which writes no feed);
    an account whose lock another run holds is skipped and noted in ``report.skipped``.
    ``on_start`` is called once, when the first account is about to be synced. Never
    raises for a failure of one unit or account: it is in the report.
    """
    report = report if report is not None else SyncReport()
    run_started = dt.datetime.now(dt.UTC)  # (leases: an account another host synced since is skipped)
    today = options.today or dt.date.today()
    run = RunContext(config, options, today, feed_window(config, today),
                     time.monotonic() + config.deadline_seconds)
    found_units: set[str] = set()
    selected = [a for a in config.accounts if not options.accounts or a.name in options.accounts]
    starting = threading.Lock()
    started = False

    def sync_one(account: Account) -> None:
        nonlocal started
        try:
            with _account_lock(config, account, options.dry_run, run_started):
                with starting:  # once, when the first account is about to be synced
                    if not started:
                        if on_start is not None:
                            on_start()
                        if config.feeds.uid_domain_fallback and not options.dry_run:
                            say_once(config.state_dir, "uid_domain", UID_DOMAIN_NOTICE, options.now())
                    started = True
                _run_account(run, account, report, found_units)
        except LockHeld as exc:
            report.skipped[account.name] = exc.holder
            log.info("%s: skipped: %s", account.name, exc)
        except StateError as exc:  # its lease's database (PostgreSQL): this account fails, not the run
            result = report.accounts.setdefault(account.name, AccountResult(account.name))
            result.error = result.error or str(exc)
            log.error("%s: %s", account.name, exc)

    # Side by side (sync/parallel.py) unless a progress bar shows one account at a time.
    workers = min(len(selected), config.max_concurrency_total)
    set_request_slots(config.max_concurrency_total)
    try:
        if workers > 1 and type(options.progress) is Progress:
            with account_logs([a.name for a in selected]):
                _side_by_side(selected, sync_one, workers)
        else:
            for account in selected:
                sync_one(account)
    finally:
        set_request_slots(None)
    order = {a.name: i for i, a in enumerate(selected)}  # as configured, however they finished
    report.accounts = dict(sorted(report.accounts.items(), key=lambda item: order.get(item[0], len(order))))
    report.skipped = dict(sorted(report.skipped.items(), key=lambda item: order.get(item[0], len(order))))
    report.unknown_units = [u for u in options.units if u not in found_units and not report.skipped]
    for unit_id in report.unknown_units:
        log.error("unit %r is not distributed by any selected account", unit_id)
    return report


def _side_by_side(accounts: list[Account], sync_one: Callable[[Account], None], workers: int) -> None:
    """Sync ``accounts`` in ``workers`` threads. If this thread is interrupted (SIGTERM,
    Ctrl-C: the running accounts are stopping too), no account still waiting is started."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accounts",
                              initializer=leave_signals_to_main)
    try:
        for future in [pool.submit(_named, account, sync_one) for account in accounts]:
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _named(account: Account, work: Callable[[Account], None]) -> None:
    """Run ``work(account)`` in a thread named after the account (its log lines are told
    with the account's, sync/parallel.py)."""
    thread = threading.current_thread()
    name, thread.name = thread.name, account_thread_name(account.name)
    try:
        work(account)
    finally:
        thread.name = name


UID_DOMAIN_NOTICE = (
    "feeds.base_url is not set: event UIDs end in \"@escapia-ical\"; set feeds.base_url (the public "
    "URL output_dir is served at) so that they end in your host, as importers that key on UIDs "
    "expect (every UID changes once when you do; feeds.uid_domain sets the host alone)")


def feed_window(config: Config, today: dt.date | None = None) -> FeedWindow:
    """Return the nights feeds show: ``past_days`` back to ``future_days`` ahead of today
    (the host's local date)."""
    return FeedWindow.around(today or dt.date.today(), config.feeds.past_days, config.feeds.future_days)


@contextmanager
def _account_lock(config: Config, account: Account, dry_run: bool,
                  run_started: dt.datetime) -> Iterator[None]:
    """This host's lock of the account, then (state in PostgreSQL) its lease among hosts."""
    if dry_run:
        yield
        return
    with account_lock(config.state_dir, account.name, stuck_after=config.deadline_seconds + STUCK_MARGIN,
                      run_started=run_started):
        yield


def _run_account(run: RunContext, account: Account, report: SyncReport, found_units: set[str]) -> None:
    result = AccountResult(account.name)
    report.accounts[account.name] = result
    source = make_source(account, run.config.state_dir, sleep=run.options.sleep, deadline=run.deadline)
    try:
        _sync_account(run, account, source, result, found_units)
    except Exception as exc:  # noqa: BLE001 - one account must never stop the others
        result.error = describe(exc, account)
        log.error("%s: %s", account.name, result.error)
        log.debug("%s: details", account.name, exc_info=not isinstance(exc, EscapiaIcalError))
    finally:
        result.requests = Counter(source.requests_by_operation)
        result.responses = Counter(source.responses_by_status)
        for line in source.notes.lines():
            log.warning("%s: %s", account.name, line)
    result.watching = account.imports is not None
    if not stop_requested():  # (an account without imports may still have work orders of ours)
        # After the feeds: conflicts are judged against what this run published (or, if the
        # account failed, what the last run did: a double booking is still worth seeing).
        from escapia_ical.imports.watch import watch_imports  # here: sync's import stays lean

        # No write-back through an account that failed (Escapia down, credentials refused).
        writer = source if account.api == "hsapi" and result.error is None else None
        try:
            result.imports = watch_imports(run, account, writer)
            result.requests = Counter(source.requests_by_operation)  # (and its SaveWorkOrders)
            result.responses = Counter(source.responses_by_status)
        except Exception as exc:  # noqa: BLE001 - the feeds are published; this is the watch only
            text = describe(exc, account)
            log.error("%s: channel imports not checked: %s", account.name, text)
            log.debug("%s: details", account.name, exc_info=not isinstance(exc, EscapiaIcalError))
            result.error = result.error or f"channel imports not checked: {text}"


def _sync_account(run: RunContext, account: Account, source: Source, result: AccountResult,
                  found_units: set[str]) -> None:
    config, options = run.config, run.options
    folder = config.output_dir / account.name
    state = AccountState(config.state_dir, account.name)
    if not options.dry_run:
        clean_temp_files(folder)
        for profile_folder in profile_folders(config, account):
            clean_temp_files(profile_folder, root=config.output_dir)
        clean_temp_files(state.folder)  # a crash mid-write may have left a token copy
        claim_state(state, account)
    book = HoldBook.load(state.folder)
    _report_book(result, book)  # what status shows even if the account fails from here on
    # HSAPI follows the change feed in both modes: in full mode every unit is fetched all
    # the same, but the feed still *shows* which stays were cancelled, moved or shortened.
    # EscapiaNET in incremental mode: quiet ticks (sync/quiet.py), planned the same way.
    tracker = ChangeTracker(account, state) if account.api == "hsapi" else quiet_tracker(account, state)
    full = options.full or (tracker is not None and account.mode == "full")
    # Every calendar is asked for the window and a margin past its end (sync/margin.py).
    requested = asked_window(run.window, account)
    # HSAPI also labels the nights asked for by kind (reservations, holds, work orders).
    window = {"window": requested} if account.api == "hsapi" else {}
    plan = (tracker.plan(source, options.now(), full=full, deadline=run.deadline,
                         held=set(book.holds), **window) if tracker else None)
    listed = plan.units if plan else source.list_units()
    stamps = state.feed_stamps()
    if not listed and stamps:
        # Units do not vanish all at once: more likely an API or distribution fault.
        if book.listing_accepted is None:
            raise SourceError(f"Escapia lists no units, but {len(stamps)} feeds were published before; "
                              f"keeping them (`escapia-ical accept --account {account.name}` accepts the "
                              "empty list once)")
        log.warning("%s: Escapia lists no units; accepted by %s", account.name, book.listing_accepted.by)
    listing_accepted, book.listing_accepted = book.listing_accepted is not None, None
    units = _select_units(account, listed, options.units, result)
    found_units.update(u.id for u in units)
    if not options.units:  # a unit Escapia no longer lists has no loss left to hold
        for gone in set(book.holds) - {u.id for u in units}:
            del book.holds[gone]
        if listing_truncated(source, plan):  # units past the cut are not gone: retire nothing
            log.info("%s: the unit list was cut short: no unit is retired this run", account.name)
        else:
            _retire_units(run, account, result, stamps, listed, units, listing_accepted)
    names = UnitNames(state.folder, stamps)
    outcomes = [UnitOutcome(account.name, u.id,
                            folder / account_feed_filename(account, u.id, names.generation(u.id)),
                            generation=names.generation(u.id))
                for u in units]
    result.units.extend(outcomes)
    for outcome in outcomes:  # only if names.json was lost after a revocation: never re-created
        if outcome.path.name in names.revoked:
            fail(outcome, PublishError(f"its feed name {outcome.path.name} was revoked; give it a new one "
                                       f"with `escapia-ical rotate --account {account.name} --unit "
                                       f"{outcome.unit_id}`"), account)
    # Without a change feed every unit is fetched; with one, only what it says changed, the
    # reconcile's share, held units, and units whose stored calendar cannot be re-rendered.
    # A unit named with --unit is always fetched: that is what a person asking for it expects.
    fetch = [(u, o) for u, o in zip(units, outcomes, strict=True) if o.error is None and (
             plan is None or u.id in plan.fetch or u.id in options.units
             or not has_stored_ranges(stamps.get(o.path.name)))]
    if plan and (plan.reasons or options.units):
        asked = {"asked for (--unit)": len({u.id for u, _ in fetch} - plan.fetch)}
        why = ", ".join(f"{n} {REASONS.get(reason, reason)}"
                        for reason, n in {**plan.reasons, **asked}.items() if n)
        log.info("%s: fetching %d of %d units: %s; the others keep their stored calendar",
                 account.name, len(fetch), len(units), why or "none due")
    policy = PublishPolicy(account.name, config.feeds, book, run.today, run.window, options.now(),
                           plan.freed if plan else None)
    succeeded: set[str] = set()
    prefetch_batch(source, account, requested, len(fetch))
    options.progress.begin(account.name, len(units))
    try:
        fetched = {u.id for u, _ in fetch}
        # What state knows books each unit's nights, by kind (HSAPI: reservations, holds and
        # work orders; feeds/kinds.py): profile feeds are made with it, at no request.
        claims = getattr(plan, "claims", None) or {}
        fetch_units(run, account, source, fetch, stamps, succeeded, policy, claims)
        # The account's feed files, listed once (after the fetches) if a unit is rolled: a
        # cold sync rolls none, and 50,000 names would be held to the end for nothing.
        present, looked = None, False
        for unit, outcome in zip(units, outcomes, strict=True):
            if unit.id not in fetched and outcome.error is None:
                if not looked:
                    present, looked = feed_names(folder), True
                try:
                    roll_unit(run, account, unit, outcome, stamps, claims.get(unit.id), present)
                except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
                    fail(outcome, exc, account)
                options.progress.step()
        del present
    finally:
        held = run.folders.pop(account.name, None)
        try:
            options.progress.end()
            result.fetched = len(succeeded)
            _report_verdicts(account, outcomes, policy, run.window)
            _report_book(result, book)
            if not options.dry_run:
                # One fsync per folder for every feed renamed into it this run, before the
                # state records them.
                sync_folders(run.unsynced.pop(account.name, set()), config.output_dir, held)
        finally:
            if held is not None:
                held.close()
        if not options.dry_run:
            confirm_lease(config.state_dir, account.name)  # (another host may have the account now)
            with state_transaction(config.state_dir):  # what was published, recorded at once
                state.save_feed_stamps(stamps)
                # Recorded, and not needed any more: the memory of the records (some 100 MB
                # at 50,000 units) is where the cursor and the status are written next.
                stamps.clear()
                book.save()
                if tracker and plan:
                    tracker.commit(plan, succeeded, options.now())
    if account.api == "escapianet":
        check_listing(source, plan)


def _retire_units(run: RunContext, account: Account, result: AccountResult, stamps: dict, listed: list[Unit],
                  units: list[Unit], listing_accepted: bool) -> None:
    """Retire the published units no longer listed or selected: their feeds stay as they are
    until `prune` (feeds/lifecycle.py). Not a unit `units:` names (Escapia not listing it is
    an error of its own), nor units that vanish from the list all at once unless accepted (a
    partial listing, more likely): each of those is an error, its feed kept."""
    configured = set(account.units) if account.units != "all" else set()
    feeds = run.config.feeds
    spared = set() if listing_accepted else vanished_at_once(
        stamps, {u.id for u in listed}, feeds.breaker_units, feeds.breaker_share)
    for unit_id in sorted(spared):  # an error each (exit 1), until the list is whole or accepted
        outcome = UnitOutcome(account.name, unit_id)
        fail(outcome, SourceError(
            f"missing from Escapia's unit list, with {len(spared) - 1} other published units at once: "
            "its feed is kept, not retired; if Escapia really stopped distributing them, "
            f"`escapia-ical accept --account {account.name}` retires them at the next sync"), account)
        result.units.append(outcome)
    result.retired = mark_retired(stamps, {u.id for u in units} | configured, run.options.now(), spared)
    if result.retired:
        log.info("%s: %d retired unit(s) not synced (no longer listed or selected): %s", account.name,
                 len(result.retired), ", ".join(sorted(result.retired)[:MAX_LINES]))


def _report_book(result: AccountResult, book: HoldBook) -> None:
    result.holds = {u: h.to_json() for u, h in book.holds.items()}
    result.breaker = book.breaker.to_json() if book.breaker else None


def _report_verdicts(account: Account, outcomes: list[UnitOutcome], policy: PublishPolicy,
                     window: FeedWindow) -> None:
    """Turn held units and answers that covered too little into unit errors (exit 1): one
    line per held unit for the first few and one for the rest; one line per run for the
    units whose answer did not cover the window."""
    held, uncovered = [], []
    last = window.end - dt.timedelta(days=1)
    for outcome in outcomes:
        if outcome.error is not None:
            continue
        if outcome.held:
            outcome.error = policy.held_message(outcome.unit_id)
            held.append(f"{account.name}/{outcome.unit_id}: {outcome.error}")
        elif outcome.uncovered:
            outcome.error = (f"Escapia's answer does not cover {spans.describe(outcome.uncovered)} of the "
                             f"feed window ({window.start}..{last}): those {spans.count(outcome.uncovered)} "
                             "nights are published as blocked")
            uncovered.append(outcome)
    for line in held[:MAX_LINES if len(held) > MAX_LINES + 1 else None]:
        log.error("%s", line)
    if len(held) > MAX_LINES + 1:
        log.error("%s: %d more units held (escapia-ical status lists them)", account.name,
                  len(held) - MAX_LINES)
    if uncovered:
        first = uncovered[0]
        others = f" and {len(uncovered) - 1} more units" if len(uncovered) > 1 else ""
        log.error("%s/%s%s: %s", account.name, first.unit_id, others, first.error)


def preview_feed(config: Config, account: Account, source: Source, unit: Unit) -> bytes:
    """Return the feed Escapia's answer for ``unit`` makes now (its uncovered nights
    blocked), before the publish policy: nothing is compared, held or written."""
    window = feed_window(config)
    stamps = AccountState(config.state_dir, account.name).feed_stamps()
    generation = UnitNames(AccountState(config.state_dir, account.name).folder, stamps).generation(unit.id)
    path = config.output_dir / account.name / account_feed_filename(account, unit.id, generation)
    answer = source.calendar(unit, window)
    uncovered = spans.subtract([window.future(dt.date.today())], answer.covered)
    blocks = feed_blocks([*answer.ranges, *(BlockedRange(s, e) for s, e in uncovered)], window)
    content, _ = build_feed(config, account, unit, blocks, previous_entry(stamps, unit.id, path),
                            dt.datetime.now(dt.UTC), uncovered)
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
