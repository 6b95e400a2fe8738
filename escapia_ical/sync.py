"""One sync: every selected account and unit, from Escapia to published feeds.

config → source → blocked ranges → feed renderer → publisher → status. A failure is
recorded against the unit (or the account) it belongs to and the run goes on; nothing
failed ever replaces a published feed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escapia_ical.config import Account, Config
from escapia_ical.errors import AuthError, EscapiaIcalError, SourceError
from escapia_ical.feed import content_digest, render_feed
from escapia_ical.filenames import account_feed_filename
from escapia_ical.guard import StoredBlocks, store_blocks, suspicious_shrink
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.publish import clean_temp_files, current_bytes, publish_feed
from escapia_ical.ranges import FeedBlock, feed_blocks
from escapia_ical.rotation import DEFAULT_GRACE_DAYS, update_old_names
from escapia_ical.sources import Source, make_source
from escapia_ical.state import AccountState

log = logging.getLogger(__name__)

FeedStamps = dict[str, dict[str, Any]]  # feed file name -> {"digest", "dtstamp", "blocks"}


@dataclass
class UnitOutcome:
    account: str
    unit_id: str
    path: Path | None = None
    error: str | None = None
    events: int = 0
    rewritten: bool = False  # with --dry-run: would be rewritten


@dataclass
class AccountResult:
    name: str
    error: str | None = None
    units: list[UnitOutcome] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, status)


@dataclass
class SyncReport:
    accounts: dict[str, AccountResult] = field(default_factory=dict)
    unknown_units: list[str] = field(default_factory=list)  # --unit ids no account lists

    @property
    def failed_units(self) -> list[UnitOutcome]:
        return [u for a in self.accounts.values() for u in a.units if u.error]

    @property
    def failed_accounts(self) -> list[AccountResult]:
        return [a for a in self.accounts.values() if a.error]

    @property
    def ok(self) -> bool:
        return not (self.failed_units or self.failed_accounts or self.unknown_units)


class Progress:
    """Told about each unit as it is done; the CLI shows a bar only on a terminal."""

    def begin(self, account: str, total: int) -> None: ...
    def step(self) -> None: ...
    def end(self) -> None: ...


@dataclass
class SyncOptions:
    accounts: Sequence[str] = ()  # empty: all
    units: Sequence[str] = ()  # empty: all the account publishes
    dry_run: bool = False
    force: bool = False
    today: dt.date | None = None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    sleep: Callable[[float], None] | None = None
    progress: Progress = field(default_factory=Progress)


def run_sync(config: Config, options: SyncOptions) -> SyncReport:
    """Fetch, render and publish every selected feed; return what happened to each.

    Never raises for a failure of one unit or account: it is in the report. The caller
    holds the sync lock (unless this is a dry run, which writes no feed).
    """
    report = SyncReport()
    today = options.today or dt.date.today()
    run = RunContext(config, options, today, feed_window(config, today))
    found_units: set[str] = set()
    for account in config.accounts:
        if options.accounts and account.name not in options.accounts:
            continue
        result = AccountResult(account.name)
        report.accounts[account.name] = result
        source = make_source(account, config.state_dir, sleep=options.sleep)
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


def describe(exc: Exception, account: Account) -> str:
    """Return the one-line message of a failure, with the account's secrets masked (a
    server may echo them back). Unexpected exceptions are named by their class."""
    if isinstance(exc, EscapiaIcalError):
        message = str(exc)
    else:
        message = f"unexpected {exc.__class__.__name__}: {exc} (a bug; -vv shows the traceback)"
    for secret in account.secrets:
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares."""

    config: Config
    options: SyncOptions
    today: dt.date
    window: FeedWindow


def _sync_account(run: RunContext, account: Account, source: Source, result: AccountResult,
                  found_units: set[str]) -> None:
    config, options = run.config, run.options
    folder = config.output_dir / account.name
    state = AccountState(config.state_dir, account.name)
    if not options.dry_run:
        clean_temp_files(folder)
        clean_temp_files(state.folder)  # a crash mid-write may have left a token copy
    listed = source.list_units()
    stamps = state.feed_stamps()
    if not listed and stamps and not options.force:
        # Units do not vanish all at once: more likely an API or distribution fault.
        # Their feeds stay as they are; --force accepts the empty list.
        raise SourceError(f"Escapia lists no units, but {len(stamps)} feeds were published "
                          "before; keeping them (--force accepts the empty list)")
    units = _select_units(account, listed, options.units, result)
    found_units.update(u.id for u in units)
    options.progress.begin(account.name, len(units))
    try:
        for index, unit in enumerate(units):
            outcome = UnitOutcome(account.name, unit.id, folder / account_feed_filename(account, unit.id))
            result.units.append(outcome)
            try:
                _sync_unit(run, account, source, unit, outcome, stamps)
            except AuthError as exc:
                # The credentials stopped working: the rest of the account cannot succeed.
                _fail(outcome, exc, account)
                result.units.extend(UnitOutcome(account.name, rest.id, error=outcome.error)
                                    for rest in units[index + 1:])
                raise
            except Exception as exc:  # noqa: BLE001 - one unit must never stop the others
                _fail(outcome, exc, account)
            options.progress.step()
    finally:
        options.progress.end()
        if not options.dry_run:
            state.save_feed_stamps(stamps)


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
    return content, {"unit": unit.id, "digest": digest, "dtstamp": dtstamp.isoformat(),
                     "blocks": store_blocks(blocks)}


def preview_feed(config: Config, account: Account, source: Source, unit: Unit) -> bytes:
    """Return the feed a sync would write for ``unit`` now; nothing is written."""
    today = dt.date.today()
    run = RunContext(config, SyncOptions(), today, feed_window(config, today))
    previous = AccountState(config.state_dir, account.name).feed_stamps().get(
        account_feed_filename(account, unit.id))
    blocks = fetch_blocks(run, account, source, unit, None, guard=False)
    content, _ = build_feed(config, account, unit, blocks, previous if isinstance(previous, dict) else {},
                            dt.datetime.now(dt.UTC))
    return content


def _sync_unit(run: RunContext, account: Account, source: Source, unit: Unit, outcome: UnitOutcome,
               stamps: FeedStamps) -> None:
    previous = stamps.get(outcome.path.name)
    previous = previous if isinstance(previous, dict) else {}
    blocks = fetch_blocks(run, account, source, unit, previous.get("blocks"), guard=not run.options.force)
    content, stamp = build_feed(run.config, account, unit, blocks, previous, run.options.now())
    outcome.events = len(blocks)
    if run.options.dry_run:
        outcome.rewritten = run.options.force or current_bytes(outcome.path) != content
        return
    outcome.rewritten = publish_feed(outcome.path, content, force=run.options.force)
    stamps[outcome.path.name] = stamp
    grace = account.feed_tokens.grace_days if account.feed_tokens else DEFAULT_GRACE_DAYS
    update_old_names(outcome.path.parent, unit.id, outcome.path.name, content, stamp, stamps,
                     run.options.now(), grace)
    log.info("%s/%s: %s (%d events)", account.name, unit.id,
             "written" if outcome.rewritten else "unchanged", outcome.events)


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
            _fail(outcome, SourceError("configured unit is not distributed by Escapia"), account)
            result.units.append(outcome)
    if requested:
        chosen = [u for u in chosen if u.id in requested]
    if not listed:
        log.warning("%s: Escapia lists no units for this account", account.name)
    return chosen


def _fail(outcome: UnitOutcome, exc: Exception, account: Account) -> None:
    outcome.error = describe(exc, account)
    log.error("%s/%s: %s", outcome.account, outcome.unit_id, outcome.error)
    log.debug("%s/%s: details", outcome.account, outcome.unit_id,
              exc_info=not isinstance(exc, EscapiaIcalError))
