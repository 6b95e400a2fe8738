"""The ``escapia-ical`` command line: click commands that call into the package.

Exit codes (documented in the README):
  0  success: every selected feed was published fresh
  1  some units or accounts failed (the others were published)
  2  configuration or usage error; for `status`: a feed is older than --max-age
  70 internal error (a bug: please report it, with the output of -v)
  75 another sync holds the lock (EX_TEMPFAIL: cron simply tries again next tick)
  130/143 interrupted (Ctrl-C) / stopped by SIGTERM: what was done is kept
  141 the reader of stdout went away (`status | head`): nothing more is said
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import click

from escapia_ical import __version__, commands, feed_urls, operations
from escapia_ical.config.positions import one_line
from escapia_ical.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_TERMINATED,
    ConfigError,
    EscapiaIcalError,
    LockHeld,
    Terminated,
)
from escapia_ical.logs import PROGRAM, redact, setup_logging
from escapia_ical.sources.stop import request_stop
from escapia_ical.status import parse_age

DEFAULT_CONFIG = Path("config/accounts.yaml")

log = logging.getLogger(__name__)


def default_config() -> Path:
    return Path(os.environ.get("ESCAPIA_ICAL_CONFIG") or DEFAULT_CONFIG)


config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    default=default_config, show_default="$ESCAPIA_ICAL_CONFIG or config/accounts.yaml",
    help="Accounts configuration (YAML).",
)
verbosity_options = [
    click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv: debug)."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr."),
]


def _verbosity(verbose: int, quiet: bool) -> int:
    return -1 if quiet else verbose


def with_verbosity(function):
    for option in reversed(verbosity_options):
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROGRAM)
def cli() -> None:
    """Publish Escapia unit availability as iCalendar (.ics) feeds."""


@cli.command()
@config_option
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account (repeatable).")
@click.option("--unit", "units", multiple=True, metavar="ID", help="Only this unit id (repeatable).")
@click.option("--dry-run", is_flag=True, help="Fetch and render, write nothing; list what would change.")
@click.option("--force", is_flag=True, help="Rewrite every feed file even when unchanged (never publishes "
              "a held loss: that is `accept`).")
@click.option("--full", is_flag=True, help="Fetch every unit, whatever the change feed says.")
@click.option("--log-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Append a detailed log here.")
@with_verbosity
def sync(config_path, accounts, units, dry_run, force, full, log_file, verbose, quiet) -> None:
    """Fetch availability and publish one feed per unit (the cron job)."""
    verbosity = -1 if quiet else verbose
    _run(lambda: commands.sync(config_path, accounts, units, dry_run=dry_run, force=force, full=full,
                               verbosity=verbosity), verbosity, log_file, quiet_lock=True)


@cli.command("check-config")
@config_option
@click.option("--deep", is_flag=True, help="Also try what a run needs of this machine: writable folders, "
              "the metrics file, account folders (still no network).")
@with_verbosity
def check_config(config_path, deep, verbose, quiet) -> None:
    """Validate the configuration; no network."""
    verbosity = -1 if quiet else verbose
    _run(lambda: commands.check_config(config_path, verbosity, deep), verbosity)


@cli.command("list-units")
@config_option
@click.option("--account", required=True, metavar="NAME", help="The account to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_verbosity
def list_units(config_path, account, as_json, verbose, quiet) -> None:
    """List the units Escapia distributes: id, code, name, feed path."""
    verbosity = -1 if quiet else verbose
    _run(lambda: commands.list_units(config_path, account, as_json), verbosity)


@cli.command()
@config_option
@click.option("--account", required=True, metavar="NAME", help="The unit's account.")
@click.option("--unit", required=True, metavar="ID", help="The unit id (nativePMSID).")
@with_verbosity
def show(config_path, account, unit, verbose, quiet) -> None:
    """Print the calendar sync would write for one unit."""
    verbosity = -1 if quiet else verbose
    _run(lambda: commands.show(config_path, account, unit), verbosity)


class AgeParam(click.ParamType):
    name = "AGE"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_age(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@config_option
@click.option("--max-age", type=AgeParam(), default="15m", show_default=True,
              help="Exit 2 if any feed was last published fresh longer ago (90s, 15m, 2h, 1d).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_verbosity
def status(config_path, max_age, as_json, verbose, quiet) -> None:
    """Show every feed's age, events and last error (no network). For Nagios/monit."""
    _run(lambda: operations.status(config_path, max_age, as_json), _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account (repeatable).")
@click.option("--base-url", metavar="URL", help="Where nginx serves output/, e.g. https://feeds.example.com")
@click.option("--live", is_flag=True, help="Ask Escapia for the units (needs the account's credentials) "
              "instead of reading what the last syncs published.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tab-separated lines.")
@with_verbosity
def feeds(config_path, accounts, base_url, live, as_json, verbose, quiet) -> None:
    """Print each unit's public feed URL, for pasting into Airbnb, Vrbo and others."""
    _run(lambda: feed_urls.feeds(config_path, accounts, base_url, live, as_json), _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--account", required=True, metavar="NAME", help="The account whose losses to accept.")
@click.option("--unit", "units", multiple=True, metavar="ID",
              help="Only this unit's held loss (repeatable); default: every held loss of the account.")
@click.option("--by", metavar="NAME", help="Who accepts, for the status (default: your user name).")
@click.option("--wait", type=click.FloatRange(0, 3600), default=60, show_default=True, metavar="SECONDS",
              help="How long to wait for a running sync of the account to finish.")
@with_verbosity
def accept(config_path, account, units, by, wait, verbose, quiet) -> None:
    """Publish held losses of blocked nights at the next sync (the publish policy keeps a
    feed's nights when Escapia frees them without explanation, or when many units lose
    nights at once). Also accepts, once, an empty or much shorter unit list."""
    _run(lambda: commands.accept(config_path, account, units, by, wait), _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account (repeatable).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed (what a real run does now).")
@click.option("--now", "at_once", is_flag=True, help="Also remove retired units still in their grace period.")
@with_verbosity
def prune(config_path, accounts, dry_run, at_once, verbose, quiet) -> None:
    """Remove the feeds of retired units (no longer listed or selected) once their grace
    period is over, and what the state remembers of them. No network."""
    _run(lambda: operations.prune(config_path, accounts, dry_run, at_once), _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--account", required=True, metavar="NAME", help="The account whose feed names to rotate.")
@click.option("--unit", "units", multiple=True, metavar="ID",
              help="Only this unit's feed (repeatable); default: every feed of the account.")
@click.option("--revoke-now", is_flag=True, help="Delete the old names at once (a leaked URL) instead of "
              "keeping them updated for feed_token_grace_days; they are never written again.")
@click.option("--base-url", metavar="URL", help="Print URLs under this base, e.g. https://feeds.example.com")
@click.option("--wait", type=click.FloatRange(0, 3600), default=60, show_default=True, metavar="SECONDS",
              help="How long to wait for a running sync of the account to finish.")
@with_verbosity
def rotate(config_path, account, units, revoke_now, base_url, wait, verbose, quiet) -> None:
    """Give feeds new secret names now (a leaked URL), and print the new URLs to paste."""
    _run(lambda: operations.rotate(config_path, account, units, revoke_now, base_url, wait),
         _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--html", "html", required=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="PATH", help="Write the page here (not inside output_dir: it is served to the world).")
@click.option("--max-age", type=AgeParam(), default="15m", show_default=True,
              help="A feed published fresh longer ago is shown stale (as `status --max-age`).")
@click.option("--with-urls", is_flag=True, help="Show each feed's URL (secret names when feed_tokens is "
              "on: the page is then written 0600); needs --base-url.")
@click.option("--base-url", metavar="URL", help="Where nginx serves output/, e.g. https://feeds.example.com")
@click.option("--inside-output-dir", is_flag=True, help="Allow PATH inside output_dir, on purpose.")
@with_verbosity
def report(config_path, html, max_age, with_urls, base_url, inside_output_dir, verbose, quiet) -> None:
    """Write a static HTML status page: per unit its health, ages, next 90 nights, and the
    runs of the last 24 h. Reads state only (no network, no secret)."""
    _run(lambda: operations.report(config_path, html, max_age, with_urls, base_url, inside_output_dir),
         _verbosity(verbose, quiet))


@cli.command()
@config_option
@click.option("--account", required=True, metavar="NAME", help="The account to diagnose.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a summary.")
@with_verbosity
def diagnose(config_path, account, as_json, verbose, quiet) -> None:
    """Check a (new) account's answers, read-only, in at most 50 requests: end_date, what
    calendars cover, letters, holds, work orders, rate-limit headers, timings."""
    verbosity = -1 if quiet else verbose
    _run(lambda: commands.diagnose(config_path, account, as_json, verbosity), verbosity)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_verbosity
def channels(config_path, as_json, verbose, quiet) -> None:
    """Read the nginx access log's new lines, then show which channel (Airbnb, Vrbo,
    Google...) last fetched each feed. Cron may run it apart from sync."""
    _run(lambda: operations.channels(config_path, as_json), _verbosity(verbose, quiet))


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default="a free port")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--extra-units", type=click.IntRange(0, 100_000), default=0,
              help="Generated units on top of the seeded ones.")
@click.option("--latency", type=click.FloatRange(0, 10), default=0.0, help="Seconds of delay per request.")
@with_verbosity
def sandbox(port, host, extra_units, latency, verbose, quiet) -> None:
    """Run the local Escapia sandbox in the foreground (Ctrl-C stops it)."""
    _run(lambda: commands.sandbox(host, port, extra_units, latency), _verbosity(verbose, quiet))


def _terminate(signum, frame) -> None:
    # Abort every request in flight and wake every wait (worker threads too), then unwind
    # this thread: the run records what it did and exits 143 at once.
    request_stop()
    raise Terminated()


def _run(action, verbosity: int, log_file: Path | None = None, *, quiet_lock: bool = False) -> None:
    """Run a command; turn its outcome or failure into one of the documented exit codes.
    ``quiet_lock``: a held lock is said only with -v (cron's sync); for an operator's
    command it is always said."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        setup_logging(verbosity, log_file)
        code = action() or EXIT_OK
    except LockHeld as exc:
        if verbosity > 0 or not quiet_lock:
            _say(str(exc))
        code = EXIT_LOCKED
    except ConfigError as exc:
        for problem in exc.problems:
            _say(problem)
        code = EXIT_CONFIG
    except EscapiaIcalError as exc:
        _say(str(exc))
        code = EXIT_FAILED
    except KeyboardInterrupt:
        _say("interrupted")
        code = EXIT_INTERRUPTED
    except Terminated:
        _say("stopped by SIGTERM; what was done is saved")
        code = EXIT_TERMINATED
    except BrokenPipeError:  # `status | head`: the reader has all it wanted
        _quiet_stdout()
        code = EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: one line under cron, the traceback with -v
        if verbosity > 0:
            click.echo(redact(traceback.format_exc()), err=True, nl=False)
        _say(f"internal error: {exc.__class__.__name__}: {exc} (rerun with -v for the traceback)")
        code = EXIT_INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit does not
    complain about the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _say(message: str) -> None:
    """Echo one error line on stderr: escaped (an id from Escapia must not forge a line)
    and with registered secrets masked, like every log line."""
    click.echo(f"{PROGRAM}: {one_line(redact(message))}", err=True)


# The cyclic garbage collector's first threshold (CPython's default: 700 allocations). A
# sync allocates millions of short-lived objects, nearly none in cycles: collecting 30x less
# often took a steady tick at 10,000 units from 0.14 to 0.05 CPU s of collections, and peak
# memory did not move (the objects it would free are few and small).
GC_FIRST_THRESHOLD = 20_000


def main() -> None:
    # What the imports made lives as long as the process: never traversed again.
    gc.freeze()
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])
    cli(prog_name=PROGRAM)
