"""What each CLI command does, apart from parsing arguments and exit codes (cli.py).

Each function returns the exit code, or raises an EscapiaIcalError the CLI turns into one.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import click

from escapia_ical.config import Account, Config, load_config
from escapia_ical.config.deep import deep_problems
from escapia_ical.config.positions import one_line
from escapia_ical.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ConfigError,
    EscapiaIcalError,
    LockHeld,
    PublishError,
    Terminated,
    UnitNotFound,
)
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.publish import use_s3
from escapia_ical.feeds.rotation import UnitNames
from escapia_ical.feeds.s3 import S3Output
from escapia_ical.healthcheck import ping
from escapia_ical.logs import PROGRAM, redact, register_secret, status_line
from escapia_ical.sources import make_source
from escapia_ical.state import AccountState
from escapia_ical.status import record_acceptance, record_run
from escapia_ical.store.documents import use_postgresql
from escapia_ical.sync import Progress, SyncOptions, SyncReport, preview_feed, run_sync
from escapia_ical.sync.lock import account_lock, status_lock

log = logging.getLogger(__name__)


def load(config_path: Path, *, warn: bool = True, secrets: bool = True, remember: bool = False) -> Config:
    """Load the configuration; show its warnings (once) on stderr unless ``warn`` is off.
    Without ``secrets``, secret keys are not read from the environment (see load_config).
    ``remember`` (a sync that writes): a document that validated is not checked against
    the schema again while it stays the same (config/checked.py); every command reads
    what a sync remembered, none but such a sync writes it.

    Its secrets are registered with the logging setup at once, so that no log line shows
    them, whichever library writes it. Raise ConfigError if the file is unusable.
    """
    config = load_config(config_path, secrets=secrets, remember=remember)
    for account in config.accounts:
        for secret in account.secrets:
            register_secret(secret)
    if config.healthcheck_url:
        # Its path is the secret part too: urllib3 logs "POST /<uuid>/start" at -vv.
        register_secret(config.healthcheck_url)
        register_secret(urlsplit(config.healthcheck_url).path.rstrip("/"))
    if config.state.backend == "postgresql":
        from escapia_ical.store.postgresql import dsn_fields  # only this backend needs psycopg

        register_secret(config.state.dsn)
        password = dsn_fields(config.state.dsn).get("password")
        if password:
            register_secret(password)
        use_postgresql(config.state_dir, config.state.dsn, config.state.schema, config.state.where)
    else:
        use_postgresql(config.state_dir, None)
    out = config.output
    objects = S3Output(config.output_dir, out.bucket, out.prefix, out.endpoint_url, out.region) \
        if out.backend == "s3" and out.bucket else None
    use_s3(config.output_dir, objects)
    if warn:
        show_warnings(config)
    return config



def show_warnings(config: Config) -> None:
    for warning in config.warnings:
        log.warning("%s", warning)


def account_named(config: Config, name: str) -> Account:
    account = config.account(name)
    if account is None:
        known = ", ".join(a.name for a in config.accounts)
        raise ConfigError(f"--account: no account named {name!r} in {config.path} (it has: {known})")
    return account


def selected_accounts(config: Config, names: Sequence[str]) -> list[Account]:
    """Return the accounts named (each must exist), or all of them when none is named."""
    return [account_named(config, name) for name in names] or list(config.accounts)


def sync(config_path: Path, accounts: Sequence[str], units: Sequence[str], *, dry_run: bool,
         force: bool, verbosity: int, full: bool = False) -> int:
    # Warnings wait for the lock: a run that finds another one running stays silent.
    config = load(config_path, warn=False, remember=not dry_run)
    for name in accounts:
        account_named(config, name)
    show_bar = sys.stderr.isatty() and verbosity >= 0
    options = SyncOptions(accounts=accounts, units=units, dry_run=dry_run, force=force, full=full,
                          progress=_TerminalProgress() if show_bar else Progress())
    if dry_run:
        show_warnings(config)
        clock = time.monotonic()
        report = run_sync(config, options)
        _print_dry_run(report)
        _log_summary(report, time.monotonic() - clock)
        return 0 if report.ok else 1
    return _recorded_sync(config, options)


def _recorded_sync(config: Config, options: SyncOptions) -> int:
    """Run the sync; write status.json and the metrics file and ping the healthcheck with
    the exit code, even if the run died or was stopped. Return the exit code: 0, or 1 if
    any unit or account failed, if a stuck run was found holding an account, or if status
    or metrics could not be written (monitoring is blind). Raise LockHeld (exit 75) if
    every account was being synced by another run."""
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    report, code, pinged = SyncReport(), EXIT_INTERNAL, False

    def on_start() -> None:  # warnings and pings wait for a lock: an overlapping run stays silent
        nonlocal pinged
        show_warnings(config)
        ping(config.healthcheck_url, "start", deadline=clock + config.deadline_seconds)
        pinged = True

    try:
        run_sync(config, options, report, on_start=on_start)
        code = 0 if report.ok else 1
        if config.channels and report.accounts:
            _track_channels(config)
    except Terminated:
        code = EXIT_TERMINATED
        raise
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        raise
    finally:
        stuck: list[str] = []
        if report.accounts or report.stuck:
            finished = dt.datetime.now(dt.UTC)
            try:
                with status_lock(config.state_dir):
                    status = record_run(config.state_dir, report, started, finished, code, stuck)
                if config.metrics_file:
                    from escapia_ical.channels import ChannelBook  # (loaded only with channels: configured)
                    from escapia_ical.metrics import write_metrics  # here: prometheus_client costs 25 ms

                    channels = ChannelBook.load(config.state_dir).feeds if config.channels else None
                    write_metrics(config.metrics_file, status, finished, channels,
                                  accounts={a.name for a in config.accounts})
            except (PublishError, LockHeld) as exc:
                log.error("%s", exc)
                code = max(code, 1)
            else:
                if config.report_html is not None:
                    from escapia_ical.report import write_report_after_sync  # (only if asked for)

                    write_report_after_sync(config, finished)  # a failure only warns
        for line in stuck:  # (said once; status shows it as long as it lasts)
            log.error("%s", line)
        code = 1 if report.stuck and code == 0 else code  # an account is not being synced
        if pinged:
            ping(config.healthcheck_url, str(code), body=failure_body(report) if code else None)
    if not report.accounts and not report.stuck:
        holders = "; ".join(f"{name}: {holder.describe()}" for name, holder in report.skipped.items())
        raise LockHeld(f"every account is being synced by another run ({holders})")
    _log_summary(report, time.monotonic() - clock)
    return code


def failure_body(report: SyncReport) -> str:
    """What failed in the run, for the failure ping's body (healthchecks.io shows it): the
    accounts and units that failed (the first 20) and every open conflict of the
    double-booking watch, new ones first. Dates, ids and errors only: no secret."""
    lines = [f"{a.name}: {a.error}" for a in report.failed_accounts]
    failed = report.failed_units
    lines += [f"{u.account}/{u.unit_id}: {u.error}" for u in failed[:20]]
    if len(failed) > 20:
        lines.append(f"... and {len(failed) - 20} more failed units (escapia-ical status lists them)")
    for name, result in report.accounts.items():
        watch = result.imports
        if watch is None:
            continue
        for key in [*watch.new, *sorted(set(watch.conflicts) - set(watch.new))]:
            conflict = watch.conflicts.get(key, {})
            fresh = "NEW " if key in watch.new else ""
            lines.append(f"{fresh}conflict {name}/{conflict.get('unit')}: {conflict.get('text')}")
        for blind in watch.blind:
            unit, _, channel = blind.rpartition(" ")
            lines.append(f"{name}/{unit}: not watched: its {channel} export keeps failing")
        lines += [f"{name}/{failed} (write-back)" for failed in watch.writes.failed]
        if watch.writes.forbidden_now:
            lines.append(f"{name}: {watch.writes.off}")
    return "".join(f"{one_line(redact(line))}\n" for line in lines)


def _track_channels(config: Config) -> None:
    """Count the channels' feed fetches the access log gained, after the feeds are
    published. Cheap (bounded by max_bytes_per_run); whatever goes wrong is a warning and
    never fails the sync; a separate `escapia-ical channels` reading it now is left alone."""
    from escapia_ical.channels import update_channels  # (only with channels: configured)

    try:
        update_channels(config, dt.datetime.now(dt.UTC), wait=0)
    except LockHeld as exc:
        log.info("channel fetch log not read: %s", exc)
    except Exception as exc:  # noqa: BLE001 - the feeds are published; this is only monitoring
        log.warning("channel fetch log not read: %s", exc)
        log.debug("details", exc_info=not isinstance(exc, EscapiaIcalError))


def accept(config_path: Path, account_name: str, units: Sequence[str], by: str | None,
           wait: float = 60.0) -> int:
    """Accept the held losses of an account (or of ``units``): the next sync publishes
    them. Record who and when in the status. Return 1 if a unit named holds no loss."""
    config = load(config_path)
    account = account_named(config, account_name)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    who = by or _user()
    with account_lock(config.state_dir, account.name, wait=wait):
        book = HoldBook.load(AccountState(config.state_dir, account.name).folder)
        accepted = book.accept(list(units) or None, who, now)
        book.save()
        if accepted or not units:  # (naming only units with nothing held changes nothing)
            with status_lock(config.state_dir):
                record_acceptance(config.state_dir, account.name, who, now, accepted, whole=not units)
    for unit, hold in accepted:
        click.echo(f"accepted {account.name}/{unit}: {spans.count(hold.lost)} future nights "
                   f"({spans.describe(hold.lost)}), held since {hold.since:%Y-%m-%d %H:%M} UTC")
    missing = [u for u in units if u not in {a for a, _ in accepted}]
    for unit in missing:
        click.echo(f"{PROGRAM}: {account.name}/{unit}: no loss is held for this unit", err=True)
    if not units:
        click.echo(f"{account.name}: {len(accepted) or 'no'} held loss(es) accepted by {who}; the next sync "
                   "publishes what Escapia says for them (and accepts, once, an empty or much "
                   "shorter unit list)")
    return 1 if missing else 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): say which uid it was
        return f"uid {os.getuid()}"


def check_config(config_path: Path, verbosity: int, deep: bool = False) -> int:
    """Validate the config (and with ``deep``, what a run needs of this machine, without
    network); print OK and return 0, or raise ConfigError with every problem."""
    config = load(config_path)
    if deep and (problems := deep_problems(config)):
        raise ConfigError([f"{config.path}: {p}" for p in problems])
    if verbosity >= 0:
        click.echo(f"{config.path}: OK, {len(config.accounts)} account(s); "
                   f"feeds in {config.output_dir}, state in {config.state_dir}")
    return 0


def list_units(config_path: Path, account_name: str, as_json: bool = False) -> int:
    config = load(config_path)
    account = account_named(config, account_name)
    units = make_source(account, config.state_dir).list_units()
    folder = config.output_dir / account.name
    names = UnitNames(AccountState(config.state_dir, account.name).folder)
    rows = [(u.id, u.code, u.name, str(folder / account_feed_filename(account, u.id, names.generation(u.id))))
            for u in units]
    if as_json:
        click.echo(json.dumps([dict(zip(("id", "code", "name", "feed"), r, strict=True)) for r in rows],
                              indent=1, ensure_ascii=False))
        return 0
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("ID", "CODE", "NAME"))]
    for row in [("ID", "CODE", "NAME", "FEED")] + rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def show(config_path: Path, account_name: str, unit_id: str) -> int:
    config = load(config_path)
    account = account_named(config, account_name)
    source = make_source(account, config.state_dir)
    unit = next((u for u in source.list_units() if u.id == unit_id), None)
    if unit is None:
        raise UnitNotFound(f"{account.name}: unit {unit_id!r} is not distributed by Escapia")
    click.echo(preview_feed(config, account, source, unit).decode("utf-8"), nl=False)
    return 0


def diagnose(config_path: Path, account_name: str, as_json: bool, verbosity: int) -> int:
    """Probe one account's answers read-only and print what was found (text or JSON)."""
    from escapia_ical.diagnose import diagnose as probe

    config = load(config_path)
    account = account_named(config, account_name)
    progress = sys.stderr if sys.stderr.isatty() and verbosity >= 0 else None
    report = probe(config, account, progress=progress)
    # Escapia's own error texts are quoted in findings: masked like every log line, in case
    # one echoes a credential back.
    click.echo(report.as_json(redact) if as_json else redact(report.as_text()), nl=as_json)
    return 0


def sandbox(host: str, port: int, extra_units: int, latency: float) -> int:
    from escapia_ical import sandbox as fake

    try:
        server = fake.Sandbox(host=host, port=port, extra_units=extra_units, latency=latency)
    except OSError as exc:  # a busy port, an address not of this machine
        raise ConfigError(f"sandbox: cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(--port 0 picks a free port)") from None
    click.echo(f"sandbox listening on {server.base_url}  (HSAPI: pmcid {fake.SANDBOX_PMCID}, "
               f"client_id {fake.SANDBOX_CLIENT_ID}, client_secret {fake.SANDBOX_CLIENT_SECRET}; "
               f"EscapiaNET: username {fake.SANDBOX_SOAP_USER}, password {fake.SANDBOX_SOAP_PASSWORD}, "
               f"property manager {fake.SANDBOX_PMC_CODE})")
    sys.stdout.flush()
    server.serve_forever()
    return 0


def _print_dry_run(report: SyncReport) -> None:
    for result in report.accounts.values():
        for outcome in result.units:
            if outcome.error is None:
                verb = "would write" if outcome.rewritten else "unchanged  "
                profiles = f", {outcome.profiles_rewritten} profile feed(s) would change" \
                    if outcome.profiles_rewritten else ""
                click.echo(f"{verb} {outcome.path} ({outcome.events} events{profiles})")


def _log_summary(report: SyncReport, seconds: float) -> None:
    units = [u for a in report.accounts.values() for u in a.units]
    failed = report.failed_units
    rewritten = sum(1 for u in units if u.rewritten and not u.error)
    profiles = sum(u.profiles_rewritten for u in units if not u.error)
    requests = sum(sum(a.requests.values()) for a in report.accounts.values())
    log.info("sync finished in %.1fs: %d feeds, %d rewritten%s, %d failed, %d API requests",
             seconds, len(units), rewritten, f" (and {profiles} profile feeds)" if profiles else "",
             len(failed), requests)
    if not report.ok:
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(units)} units failed")
        if report.failed_accounts:
            parts.append(f"{len(report.failed_accounts)} of {len(report.accounts)} accounts failed")
        if report.unknown_units:
            parts.append(f"{len(report.unknown_units)} requested units not found")
        if parts:
            log.error("sync incomplete: %s; the other feeds were published", ", ".join(parts))
        watched = [a.imports for a in report.accounts.values() if a.imports is not None and a.imports.failing]
        if watched:
            new, blind = sum(len(w.new) for w in watched), sum(len(w.blind) for w in watched)
            log.error("channel imports: %d new conflict(s), %d export(s) failing too long to watch their "
                      "unit (`escapia-ical status` lists what is open)", new, blind)


class _TerminalProgress(Progress):
    def __init__(self):
        self._bar = None

    def begin(self, account: str, total: int) -> None:
        self._bar = click.progressbar(length=total, label=account, file=sys.stderr)
        self._bar.__enter__()
        status_line(self._bar.render_progress)  # log lines clear the bar's line first

    def step(self) -> None:
        if self._bar:
            self._bar.update(1)

    def end(self) -> None:
        if self._bar:
            status_line(None)
            self._bar.__exit__(None, None, None)
            self._bar = None
