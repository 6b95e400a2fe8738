"""Which channel fetched which feed, and when: read from the nginx access log.

``update_channels`` reads what the log gained since the last run (``logreader``), keeps the
fetches of published feeds (``logformat``: path -> feed, User-Agent -> channel by the table
in ``agents``) and merges them into ``state_dir/channels.json`` (``record``). ``sync`` runs
it after publishing; ``escapia-ical channels`` runs it on its own; ``status`` warns about
channels gone silent (``silence_notes``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from escapia_ical.channels.logformat import Tally, scan
from escapia_ical.channels.logreader import LogMissing, LogRead, read_log
from escapia_ical.channels.record import ChannelBook, silence_notes
from escapia_ical.config import Config
from escapia_ical.state import AccountState
from escapia_ical.sync.lock import channels_lock

log = logging.getLogger(__name__)

__all__ = ["ChannelBook", "ChannelRun", "feed_paths", "fetch_rows", "silence_notes", "update_channels"]


@dataclass
class ChannelRun:
    """What one update did: the lines scanned (``tally``) and what the reader said."""

    tally: Tally
    read: LogRead | None
    error: str | None = None


def feed_paths(config: Config) -> dict[bytes, tuple[str, str]]:
    """Return the URL path of every feed state knows (``/<account>/<file name>``, current
    and older names alike, from feeds.json) -> (account, unit id)."""
    paths = {}
    for account in config.accounts:
        for name, entry in AccountState(config.state_dir, account.name).feed_stamps().items():
            unit = entry.get("unit")
            if isinstance(unit, str):
                paths[f"/{account.name}/{name}".encode()] = (account.name, unit)
    return paths


def fetch_rows(config: Config, book: ChannelBook, now: dt.datetime) -> list[dict[str, Any]]:
    """Return one row per published feed (units in feeds.json) and channel that fetched it:
    account, unit, channel, age_seconds of the last fetch, first, last, status, count;
    a feed no channel fetched has one row with channel None."""
    rows: list[dict[str, Any]] = []
    for account in config.accounts:
        fetched = book.feeds.get(account.name, {})
        stamps = AccountState(config.state_dir, account.name).feed_stamps()
        for unit in sorted({e["unit"] for e in stamps.values() if isinstance(e.get("unit"), str)}):
            row = {"account": account.name, "unit": unit}
            if not fetched.get(unit):
                rows.append({**row, "channel": None, "age_seconds": None})
            for channel, entry in sorted(fetched.get(unit, {}).items()):
                age = (now - dt.datetime.fromisoformat(entry["last"])).total_seconds()
                rows.append({**row, "channel": channel, "age_seconds": age,
                             **{k: entry[k] for k in ("first", "last", "status", "count")}})
    return rows


def update_channels(config: Config, now: dt.datetime, *, wait: float = 30.0) -> ChannelRun:
    """Read what the access log gained, record it in channels.json, and return what was
    done. A log that cannot be read is recorded as the read's error (status shows it) and
    returned in ``error``; nothing is lost: the next run goes on from the same place.
    Raise LockHeld if another process holds the channel log after ``wait`` seconds, and
    PublishError if channels.json cannot be written. Requires ``config.channels``."""
    settings = config.channels
    assert settings is not None
    with channels_lock(config.state_dir, wait=wait):
        book = ChannelBook.load(config.state_dir)
        if book.log_path != str(settings.access_log):
            book.log_path, book.position = str(settings.access_log), None  # another log: from scratch
        paths = feed_paths(config)
        tally = Tally()
        run = ChannelRun(tally, None)
        try:
            run.read = read_log(settings.access_log, book.position, settings.max_bytes_per_run,
                                lambda block: scan(block, paths, tally))
        except LogMissing as exc:
            run.error = str(exc)
        except (OSError, EOFError) as exc:  # EOFError: a rotated .gz cut short
            where = getattr(exc, "filename", None) or settings.access_log
            run.error = f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}"
        if run.read is not None:
            book.position = run.read.position
            book.merge(tally)
        for account, unit, channel in book.forget(now, dt.timedelta(days=settings.forget_days)):
            log.info("%s/%s: %s forgotten: no fetch for %g days", account, unit, channel,
                     settings.forget_days)
        book.read = {"at": now.astimezone(dt.UTC).replace(microsecond=0).isoformat(), "error": run.error,
                     "lines": tally.lines, "malformed": tally.malformed, "ignored": tally.ignored,
                     "behind": bool(run.read and run.read.behind)}
        book.save()
    _log_run(run, settings.access_log)
    return run


def _log_run(run: ChannelRun, path) -> None:
    if run.error:
        log.warning("channel fetch log: %s", run.error)
        return
    read, tally = run.read, run.tally
    assert read is not None
    for note in read.notes or ():
        log.warning("channel fetch log: %s", note)
    if read.skipped_bytes:
        log.info("channel fetch log: first read of %s: skipped %d bytes of older history", path,
                 read.skipped_bytes)
    if tally.malformed or read.oversized:
        log.info("channel fetch log: %d lines in no known format skipped", tally.malformed + read.oversized)
    if read.behind:
        log.info("channel fetch log: more than max_bytes_per_run was written; the rest is read next run")
    log.info("channel fetch log: %d bytes, %d lines, %d feed fetches read from %s", read.bytes_read,
             tally.lines, sum(f.count for f in tally.fetches.values()), path)
