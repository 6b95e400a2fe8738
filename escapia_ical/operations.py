"""The operator commands: status, feeds, prune, rotate, channels. Each returns the exit code."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import click

from escapia_ical.commands import account_named, load, selected_accounts
from escapia_ical.config.positions import one_line
from escapia_ical.errors import EXIT_FAILED, ConfigError, PublishError
from escapia_ical.feeds.lifecycle import plan_prune
from escapia_ical.feeds.names import account_feed_filename, is_feed_filename
from escapia_ical.feeds.publish import current_bytes, feed_files, publish_feed, remove_feed, subfolders
from escapia_ical.feeds.rotation import UnitNames
from escapia_ical.state import AccountState, moment, names_of
from escapia_ical.status import (
    ALERTING,
    account_notes,
    configured_rows,
    feed_health,
    feed_rows,
    format_age,
    load_status,
    run_note,
    save_status,
    status_path,
)
from escapia_ical.sync.lock import account_lock, status_lock
from escapia_ical.sync.profiles import profile_files

log = logging.getLogger(__name__)
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
    wanted = {a.name: a.units for a in config.accounts}
    rows = configured_rows(feed_rows(recorded, now), wanted)
    stale = [r for r in rows if feed_health(r, max_age) in ALERTING]
    run = run_note(recorded, now, max_age)
    notes = ([{"account": None, "problem": run}] if run else []) + account_notes(recorded, set(wanted))
    if config.channels:  # a channel that stopped fetching a feed: its calendar sync broke
        from escapia_ical.channels import ChannelBook, silence_notes  # (only with channels: configured)

        # Only feeds still published: a retired or pruned unit's channels stop on purpose.
        live: dict[str, set[str]] = {}
        for row in rows:
            if not row["retired"]:
                live.setdefault(row["account"], set()).add(row["unit"])
        notes += silence_notes(ChannelBook.load(config.state_dir), now,
                               dt.timedelta(hours=config.channels.silence_hours), live)
    # Which host ran each account last (several hosts may share the state: sync/leases.py).
    hosts = {name: {"host": entry.get("host"), "last_attempt": entry.get("last_attempt")}
             for name, entry in recorded.get("accounts", {}).items()
             if name in wanted and isinstance(entry, dict)}
    if as_json:
        click.echo(json.dumps({"max_age_seconds": max_age.total_seconds(), "stale": len(stale),
                               "hosts": hosts,
                               "ok": not (stale or notes or not rows), "run": recorded.get("run"),
                               "problems": notes, "accounts": [n for n in notes if n["account"]],
                               "conflicts": [n for n in notes if n.get("kind") == "conflict"],
                               "feeds": rows}, indent=1, ensure_ascii=False))
    else:
        for note in notes:
            where = f"{note['account']}: " if note["account"] else ""
            click.echo(one_line(f"{where}{note['problem']}"))
        if config.state.backend == "postgresql":
            for name, last in hosts.items():
                host = last["host"] or "?"
                click.echo(one_line(f"{name}: last run by host {host} at {last['last_attempt']}"))
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
                if r["retired"]:
                    error = (f"retired since {r['retired'][:16]}: no longer listed or selected; `prune` "
                             f"removes it {config.feeds.retire_grace_days} days after")
                click.echo(f"{feed} {mark}{format_age(r['age_seconds']):>6}  {events:>6}  {error}")
    return EXIT_STALE if stale or notes or not rows else 0


def prune(config_path: Path, accounts: Sequence[str], dry_run: bool, at_once: bool = False) -> int:
    """Remove the feeds of retired units (feeds/lifecycle.py) whose grace period is over —
    or all of them with ``at_once`` — and what the state remembers of them; say which wait,
    and until when. ``dry_run`` says exactly what a real run would do and changes nothing
    (it needs no lock). Feed files the state does not know are listed, never removed.
    Reads state only: no network, no secret."""
    config = load(config_path, secrets=False)
    grace = dt.timedelta(days=config.feeds.retire_grace_days)
    for account in selected_accounts(config, accounts):
        folder = config.output_dir / account.name
        if folder.is_symlink():
            raise PublishError(f"{folder} is a symbolic link; refusing to remove files through it")
        lock = nullcontext() if dry_run else account_lock(config.state_dir, account.name, wait=LOCK_WAIT)
        with lock:
            state = AccountState(config.state_dir, account.name)
            stamps = state.feed_stamps()
            plan = plan_prune(folder, stamps, dt.datetime.now(dt.UTC), grace, at_once=at_once)
            for unit, until in sorted(plan.waiting.items()):
                click.echo(one_line(f"{account.name}/{unit}: retired; kept until {until:%Y-%m-%d %H:%M} UTC "
                                    "(feeds.retire_grace_days; --now removes it at once)"))
            for path in plan.unknown:
                log.warning("%s: %s is not in the state (written by hand, or before the state was lost); "
                            "not removed: delete it by hand if no channel needs it", account.name, path)
            now = dt.datetime.now(dt.UTC)
            for _unit, names in sorted(plan.remove.items()):
                for name in names:
                    for path in [folder / name, *profile_files(config, account, stamps[name], old=True)]:
                        click.echo(one_line(f"{'would remove' if dry_run else 'removed'} {path}"))
                        if not dry_run:  # relative to the folders, never through a link
                            remove_feed(path, root=config.output_dir)
                    if not dry_run:
                        del stamps[name]
            dropped = _prune_profiles(config, account, stamps, now, grace, at_once, dry_run)
            for path in _unknown_profile_files(config, account, stamps):
                log.warning("%s: %s is not in the state (written by hand, or before the state was lost); "
                            "not removed: delete it by hand if no channel needs it", account.name, path)
            if (plan.remove or dropped) and not dry_run:
                state.save_feed_stamps(stamps)
        if plan.remove and not dry_run:
            _forget_in_status(config.state_dir, account.name, set(plan.remove))
    return 0


def _prune_profiles(config, account, stamps: dict, now: dt.datetime, grace: dt.timedelta, at_once: bool,
                    dry_run: bool) -> bool:
    """Remove the feeds of profiles no longer configured (marked ``withdrawn`` by the sync,
    sync/profiles.py) once their grace is over, or ``at_once``; return whether any went."""
    dropped = False
    configured = {p.name for p in account.profiles}
    for entry in stamps.values():
        published = entry.get("profiles") if isinstance(entry.get("profiles"), dict) else {}
        for profile, recorded in sorted(published.items()):
            since = moment(recorded.get("withdrawn"))
            # Configured again since (the next sync takes it back): never removed.
            if since is None or profile in configured or not (at_once or now - since >= grace):
                continue
            for path in profile_files(config, account, {"profiles": {profile: recorded}}, old=True):
                verb = "would remove" if dry_run else "removed"
                click.echo(one_line(f"{verb} {path} (profile {profile} is no longer configured)"))
                if not dry_run:
                    remove_feed(path, root=config.output_dir)
            if not dry_run:
                del published[profile]
                dropped = True
    return dropped


def _unknown_profile_files(config, account, stamps: dict) -> list[Path]:
    """Feed files in the account's profile folders that no feeds.json entry records."""
    known = {p for entry in stamps.values() for p in profile_files(config, account, entry, old=True)}
    folder = config.output_dir / account.name
    found = [p for d in subfolders(folder) for p in feed_files(d) if is_feed_filename(p.name)]
    return [p for p in found if p not in known]


def _forget_in_status(state_dir: Path, account: str, units: set[str]) -> None:
    with status_lock(state_dir):
        status = load_status(state_dir)
        entries = status.get("accounts", {}).get(account, {}).get("units", {})
        for unit in units:
            entries.pop(unit, None)
        save_status(state_dir, status)


def rotate(config_path: Path, account_name: str, units: Sequence[str], revoke_now: bool,
           base_url: str | None, wait: float = LOCK_WAIT) -> int:
    """Give the feeds of ``units`` (default: every unit the account publishes) new secret
    names, effective now: the current content is published under the new name at once and
    the new URLs are printed. The old names keep being updated for ``feed_token_grace_days``
    (while the new URLs are pasted), or with ``revoke_now`` are deleted at once and never
    written again. Return 1 if a unit named has no published feed."""
    config = load(config_path)
    base_url = base_url or config.feeds.base_url
    account = account_named(config, account_name)
    if account.feed_tokens is None:
        raise ConfigError(f"{config.path}: accounts {account.name!r}: rotate gives secret feed names, which "
                          "need `feed_tokens: true` and a `feed_token_secret` (plain names are the unit ids)")
    folder = config.output_dir / account.name
    missing = []
    with account_lock(config.state_dir, account.name, wait=wait):
        state = AccountState(config.state_dir, account.name)
        stamps = state.feed_stamps()
        names = UnitNames(state.folder, stamps)
        published = {e["unit"] for e in stamps.values()
                     if isinstance(e.get("unit"), str) and "retired" not in e and "withdrawn" not in e}
        retired = {e["unit"] for e in stamps.values() if "withdrawn" in e} - published
        missing = [u for u in units if u not in published]
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        for unit in sorted(set(units) - set(missing) if units else published):
            old = sorted(names_of(stamps, unit))  # (the index: a scan per unit was quadratic)
            current = next((n for n in old if "retired" not in stamps[n]), old[0])
            new = account_feed_filename(account, unit, names.rotate(unit))
            while new in names.revoked or new in stamps:  # (generations lost: never a used name)
                new = account_feed_filename(account, unit, names.rotate(unit))
            content = current_bytes(folder / current)
            if content is not None:  # the new URL works before the next sync
                publish_feed(folder / new, content)
                stamps[new] = {k: v for k, v in stamps[current].items() if k != "retired"}
                stamps[new]["generation"] = names.generation(unit)
                _rotate_profiles(config, account, unit, stamps[new], names.generation(unit), revoke_now, now,
                                 base_url)
            for name in old:
                if revoke_now:
                    remove_feed(folder / name)
                    del stamps[name]
                    names.revoked.add(name)
                else:  # an old name from now on: never listed to paste, deleted after the grace
                    stamps[name].setdefault("retired", now)
            where = f"{base_url.rstrip('/')}/{account.name}/{new}" if base_url else str(folder / new)
            click.echo("\t".join(one_line(cell) for cell in (account.name, unit, where)))
        names.save(config.state_dir)
        state.save_feed_stamps(stamps)
    for unit in missing:
        if unit in retired:
            log.error("%s/%s: a retired unit (no longer listed or selected): `escapia-ical prune --now` "
                      "removes its feed", account.name, unit)
        else:
            log.error("%s/%s: no published feed to rotate (run sync first, or check the unit id)",
                      account.name, unit)
    if not revoke_now:
        log.warning("%s: the old names keep being updated for %d days while you paste the new URLs; "
                    "`--revoke-now` deletes them at once", account.name, account.feed_tokens.grace_days)
    return EXIT_FAILED if missing else 0


def _rotate_profiles(config, account, unit: str, entry: dict, generation: int, revoke_now: bool,
                     now: str, base_url: str | None) -> None:
    """Give the unit's profile feeds their names of ``generation`` too: the current content
    under the new name now; the old names deleted (``revoke_now``) or, like the default
    feed's, kept up to date by the syncs of the grace period (sync/profiles.py)."""
    published = entry.get("profiles") if isinstance(entry.get("profiles"), dict) else {}
    entry["profiles"] = published = {name: dict(p) for name, p in published.items()}
    if revoke_now:  # the feeds of profiles no longer configured: their URLs may have leaked too
        for profile in [n for n, p in published.items() if "withdrawn" in p]:
            gone = {"profiles": {profile: published.pop(profile)}}
            for path in profile_files(config, account, gone, old=True):
                remove_feed(path, root=config.output_dir)
    for path in profile_files(config, account, entry, withdrawn=False):
        profile = path.parent.name
        new = account_feed_filename(account, unit, generation, profile)
        content = current_bytes(path)
        if content is None or new == path.name:
            continue
        publish_feed(path.parent / new, content, root=config.output_dir)
        recorded = published[profile]
        old = dict(recorded.get("old") or {}) if isinstance(recorded.get("old"), dict) else {}
        old[path.name] = now
        if revoke_now:
            for name in old:
                if is_feed_filename(name):
                    remove_feed(path.parent / name, root=config.output_dir)
            old = {}
        recorded.update(file=new, old=old)
        where = (f"{base_url.rstrip('/')}/{account.name}/{profile}/{new}" if base_url
                 else str(path.parent / new))
        click.echo("\t".join(one_line(cell) for cell in (account.name, unit, where)))


def report(config_path: Path, html: Path, max_age: dt.timedelta, with_urls: bool, base_url: str | None,
           inside_output_dir: bool) -> int:
    """Write the static status page to ``html`` (report/): from state only, no network and no
    secret. Feed URLs (secret names when feed_tokens is on) only ``with_urls``, which needs
    ``base_url``. Raise ConfigError for a usage problem or a path inside output_dir."""
    from escapia_ical.report import write_report

    if with_urls != (base_url is not None):
        raise ConfigError("--with-urls and --base-url go together: the URLs are built from --base-url")
    config = load(config_path, secrets=False)
    write_report(config, html, max_age=max_age, base_url=base_url if with_urls else None,
                 inside_output_dir=inside_output_dir)
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
    from escapia_ical.channels import ChannelBook, fetch_rows, update_channels  # (the log reader: only here)
    from escapia_ical.channels.record import channels_path

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
