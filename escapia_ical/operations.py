"""The operator commands: status, feeds, prune, channels. Each returns the exit code."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import click

from escapia_ical.channels import ChannelBook, fetch_rows, silence_notes, update_channels
from escapia_ical.channels.record import channels_path
from escapia_ical.commands import load, selected_accounts
from escapia_ical.config.positions import one_line
from escapia_ical.errors import ConfigError
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.publish import remove_feed
from escapia_ical.prune import find_orphans
from escapia_ical.sources import make_source
from escapia_ical.state import AccountState, write_json
from escapia_ical.status import account_notes, feed_rows, format_age, load_status, run_note, status_path
from escapia_ical.sync.incremental import forget_units
from escapia_ical.sync.lock import account_lock, status_lock

EXIT_STALE = 2
LOCK_WAIT = 60.0  # seconds prune waits for a sync of the account to finish


def status(config_path: Path, max_age: dt.timedelta, as_json: bool) -> int:
    """Print every feed's age, events and last error, and what needs an operator: the runs
    (none finished within ``max_age``), accounts (a failed last run, never synced, a loss
    held by the breaker, a stuck run); return 2 if anything needs one — a feed older than
    ``max_age`` (or never published fresh) or held, or any such note — else 0.
    Reads state only: no network, and no secret is read from the environment."""
    config = load(config_path, secrets=False)
    now = dt.datetime.now(dt.UTC)
    recorded = load_status(config.state_dir)
    # Only what the config still publishes: removed accounts or units are not stale feeds.
    wanted = {a.name: a.units for a in config.accounts}
    rows = [r for r in feed_rows(recorded, now)
            if wanted.get(r["account"]) == "all" or r["unit"] in wanted.get(r["account"], ())]
    stale = [r for r in rows if r["age_seconds"] is None or r["age_seconds"] > max_age.total_seconds()
             or r["held"]]
    run = run_note(recorded, now, max_age)
    notes = ([{"account": None, "problem": run}] if run else []) + account_notes(recorded, set(wanted))
    if config.channels:  # a channel that stopped fetching a feed: its calendar sync broke
        notes += silence_notes(ChannelBook.load(config.state_dir), now,
                               dt.timedelta(hours=config.channels.silence_hours), wanted)
    if as_json:
        click.echo(json.dumps({"max_age_seconds": max_age.total_seconds(), "stale": len(stale),
                               "ok": not (stale or notes or not rows), "run": recorded.get("run"),
                               "problems": notes, "accounts": [n for n in notes if n["account"]],
                               "feeds": rows}, indent=1, ensure_ascii=False))
    else:
        for note in notes:
            where = f"{note['account']}: " if note["account"] else ""
            click.echo(one_line(f"{where}{note['problem']}"))
        if not rows:
            click.echo(f"no feeds recorded yet in {status_path(config.state_dir)}")
        else:
            # Unit ids and errors come from Escapia: escaped, so that none can forge a row.
            names = [one_line(f"{r['account']}/{r['unit']}") for r in rows]
            width = max([*map(len, names), 4])
            click.echo(f"{'FEED'.ljust(width)}  {'AGE':>6}  {'EVENTS':>6}  LAST ERROR")
            for name, r in zip(names, rows, strict=True):
                feed, mark = name.ljust(width), "!" if r in stale else " "
                events, error = "" if r["events"] is None else r["events"], one_line(r["last_error"] or "")
                click.echo(f"{feed} {mark}{format_age(r['age_seconds']):>6}  {events:>6}  {error}")
    return EXIT_STALE if stale or notes or not rows else 0


def feeds(config_path: Path, accounts: Sequence[str], base_url: str | None) -> int:
    """Print each unit's feed URL (or path), for pasting into Airbnb, Vrbo and others."""
    config = load(config_path)
    selected = selected_accounts(config, accounts)
    for account in selected:
        for unit in make_source(account, config.state_dir).list_units():
            if account.units != "all" and unit.id not in account.units:
                continue
            name = account_feed_filename(account, unit.id)
            where = (f"{base_url.rstrip('/')}/{account.name}/{name}" if base_url
                     else str(config.output_dir / account.name / name))
            click.echo(f"{account.name}\t{unit.id}\t{unit.name}\t{where}")
    return 0


def prune(config_path: Path, accounts: Sequence[str], dry_run: bool, force: bool = False) -> int:
    """List (``dry_run``) or remove the feeds of units Escapia no longer lists. Refuse to
    remove more than half of an account's feeds (a partial listing) unless ``force``."""
    config = load(config_path)
    selected = selected_accounts(config, accounts)
    for account in selected:
        gone: list[str] = []
        with account_lock(config.state_dir, account.name, wait=LOCK_WAIT):
            listed = make_source(account, config.state_dir).list_units()
            state = AccountState(config.state_dir, account.name)
            stamps = state.feed_stamps()
            orphans = find_orphans(config.output_dir / account.name, account, listed, stamps)
            published = len(list((config.output_dir / account.name).glob("*.ics")))
            if orphans and not dry_run and (not listed or (len(orphans) > published / 2 and not force)):
                click.echo(f"{account.name}: refusing to remove {len(orphans)} of {published} feeds "
                           "(is Escapia's listing complete? --force removes them)", err=True)
                return 1
            for path in orphans:
                click.echo(f"{'would remove' if dry_run else 'removed'} {path}")
                if dry_run:
                    continue
                remove_feed(path)  # relative to the folder, never through a link swapped in
                unit = stamps.pop(path.name, {}).get("unit")
                if unit is not None:
                    gone.append(unit)
            if not dry_run:
                state.save_feed_stamps(stamps)
                forget_units(state)  # the next sync lists units again instead of trusting a cache
        if gone:
            with status_lock(config.state_dir):
                status = load_status(config.state_dir)
                units = status.get("accounts", {}).get(account.name, {}).get("units", {})
                for unit in gone:
                    units.pop(unit, None)
                write_json(status_path(config.state_dir), status)
    return 0


def channels(config_path: Path, as_json: bool) -> int:
    """Read what the access log gained (under the channel log's lock), then print per
    published feed each channel's last fetch, status and count (a feed no channel fetched
    has one row without a channel). Return 1 if the log could not be read, else 0."""
    config = load(config_path, secrets=False)
    if config.channels is None:
        raise ConfigError(f"{config.path}: channels: not configured (add `channels: {{access_log: PATH}}`, "
                          "see the README, \"Which channel fetched which feed\")")
    now = dt.datetime.now(dt.UTC)
    run = update_channels(config, now, wait=LOCK_WAIT)
    book = ChannelBook.load(config.state_dir)
    rows = fetch_rows(config, book, now)
    if as_json:
        click.echo(json.dumps({"log": str(config.channels.access_log), "read": book.read,
                               "state": str(channels_path(config.state_dir)), "feeds": rows},
                              indent=1, ensure_ascii=False))
    else:
        names = [one_line(f"{r['account']}/{r['unit']}") for r in rows]
        width = max([*map(len, names), 4])
        click.echo(f"{'FEED'.ljust(width)}  {'CHANNEL':<16}  {'LAST FETCH':<25}  {'AGE':>5}  STATUS  COUNT")
        for name, r in zip(names, rows, strict=True):
            if r["channel"] is None:
                click.echo(f"{name.ljust(width)}  {'-':<16}  no fetch seen")
                continue
            age = format_age(r["age_seconds"])
            click.echo(f"{name.ljust(width)}  {r['channel']:<16}  {r['last']:<25}  {age:>5}  "
                       f"{r['status']:>6}  {r['count']:>5}")
    return 1 if run.error else 0
