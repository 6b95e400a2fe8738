"""One account's channel imports in one run: fetch the exports that are due, read them,
compare every unit's channel bookings with what our feed shows, report what changed.

Runs after the account's feeds are published, so Escapia's side is this run's. An export
is fetched once per ``every_minutes``, at a point of that period fixed per export (a hash
of its unit and channel), so that many exports spread over the ticks instead of all coming
due at once; a failed fetch is tried again at the next tick. Fetches are conditional
(ETag, Last-Modified), capped in size (``max_bytes``) and time (the account's
``total_timeout``, at most 60 s, and the run's deadline), retried as the account's
requests are, and go only to the channel's host: none of them is an Escapia request. A
failed or unreadable export keeps its last events: a channel that fails or answers
garbage changes nothing.

A conflict is reported once, when it appears (an error line; the run exits 1), kept in
the status while it lasts, and closes by itself when the booking or Escapia changes.
An export failing for longer than ``max(60 min, 4 x every_minutes)`` is an error too: the
unit is no longer watched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from escapia_ical import __version__
from escapia_ical.config import Account
from escapia_ical.config.imports import ChannelImport, ImportSettings
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.rotation import UnitNames
from escapia_ical.imports.book import FeedRecord, ImportBook, feed_name
from escapia_ical.imports.conflicts import Conflict, find_conflicts
from escapia_ical.imports.parse import channel_events
from escapia_ical.imports.writeback import WriteResult, adopt, left_behind, own_nights, write_back
from escapia_ical.sources.http import HttpClient, HttpStatusError
from escapia_ical.sources.stop import Stopped, leave_signals_to_main
from escapia_ical.state import AccountState, FeedStamps, moment
from escapia_ical.store.documents import state_transaction
from escapia_ical.sync.context import RunContext
from escapia_ical.sync.parallel import account_thread_name
from escapia_ical.sync.stamps import stored_ranges

log = logging.getLogger(__name__)

# Browser-like (some exports refuse unknown agents) but honest: it names us.
USER_AGENT = f"Mozilla/5.0 (compatible; escapia-ical/{__version__}; calendar import)"
MAX_FETCH_SECONDS = 60.0


@dataclass
class ImportsResult:
    """What one account's imports did this run, for the report, the status and metrics."""

    fetched: int = 0  # exports read anew (200)
    unchanged: int = 0  # exports that answered 304
    failed: dict[str, str] = field(default_factory=dict)  # "<unit> <channel>" -> error
    blind: list[str] = field(default_factory=list)  # exports failing past the limit (errors)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # open now: id -> what
    new: list[str] = field(default_factory=list)  # conflict ids that appeared this run
    closed: list[str] = field(default_factory=list)  # conflict ids that closed this run
    read: set[str] = field(default_factory=set)  # exports read this run (200 or 304)
    writes: WriteResult = field(default_factory=WriteResult)  # write-back (writeback.py)

    @property
    def failing(self) -> bool:
        return bool(self.new or self.blind or self.writes.failed or self.writes.forbidden_now)


def watch_imports(run: RunContext, account: Account, source: Any = None) -> ImportsResult | None:
    """Fetch the account's due channel exports and report its conflicts, and with
    write-back on (HSAPI ``source``) block unsynced bookings in Escapia; None if the account
    has no imports. Raise StateError if the state cannot be read or written."""
    settings = account.imports
    options, now = run.options, run.options.now()
    state = AccountState(run.config.state_dir, account.name)
    book = ImportBook.load(state.folder)
    result = ImportsResult()
    if settings is None:  # no imports, but maybe work orders of ours from when there were
        result.writes.left = left_behind(account, book)
        return result if result.writes.left else None
    names = {feed_name(f.unit, f.channel) for f in settings.feeds}
    book.forget_units({f.unit for f in settings.feeds}, names)
    due = [f for f in settings.feeds if _due(book.feeds.get(feed_name(f.unit, f.channel)), f, now, settings)]
    if due:
        _fetch_all(run, account, settings, due, book, result, now)
    stamps = state.feed_stamps()
    open_orders = getattr(source, "open_orders", None)  # HSAPI: this run's SearchWorkOrders, if read
    if settings.block_in_escapia:  # (before judging: a lost mapping is found again first)
        for order in adopt(account, book, open_orders):
            log.info("%s: work order %s is ours (its description says so): taken back", account.name, order)
    found = _conflicts(run, account, settings, book, state, stamps, now, open_orders)
    _report(account, book, found, result, now)
    if source is not None:
        confirm = dt.timedelta(minutes=max(run.config.feeds.confirm_minutes, settings.every_minutes))
        result.writes = write_back(account, source, book, found, result.read, now, confirm, options.dry_run)
    limit = dt.timedelta(minutes=max(60.0, 4 * settings.every_minutes))
    for name, record in sorted(book.feeds.items()):
        if record.error and record.failing_since and now - record.failing_since >= limit:
            result.blind.append(name)
            unit, channel = name.rsplit(" ", 1)
            log.error("%s/%s: not watched for double bookings: its %s export has failed since %s UTC (%s)",
                      account.name, unit, channel, f"{record.failing_since:%Y-%m-%d %H:%M}", record.error)
    if not options.dry_run:
        with state_transaction(run.config.state_dir):
            book.save()
    return result


def _due(record: FeedRecord | None, feed: ChannelImport, now: dt.datetime, settings: ImportSettings) -> bool:
    """Whether the export is fetched this run: never read, failing, or a new period of
    ``every_minutes`` began (at the export's own point of it) since it was last read."""
    if record is None or record.fetched is None or record.error is not None:
        return True
    period = settings.every_minutes * 60
    name = feed_name(feed.unit, feed.channel).encode()
    phase = int.from_bytes(hashlib.blake2b(name, digest_size=4).digest(), "big") % int(period)
    return (now.timestamp() - phase) // period > (record.fetched.timestamp() - phase) // period


def _fetch_all(run: RunContext, account: Account, settings: ImportSettings, due: list[ChannelImport],
               book: ImportBook, result: ImportsResult, now: dt.datetime) -> None:
    # The account's retry policy; a whole request at most MAX_FETCH_SECONDS (and the deadline).
    policy = replace(account.http, total_timeout=min(account.http.total_timeout, MAX_FETCH_SECONDS))
    client = HttpClient(policy, sleep=run.options.sleep, deadline=run.deadline)
    domains = _our_domains(run, account)
    # The key of the events' UID hashes: the account's secret (stable, never stored).
    secret = account.secrets[0].encode("utf-8", "surrogatepass")
    nights = run.window.future(run.today)
    counting = threading.Lock()

    def fetch(feed: ChannelImport) -> None:
        name = feed_name(feed.unit, feed.channel)
        record = book.feeds.get(name) or FeedRecord()
        try:
            record, changed = _fetch_one(client, feed, record, settings, nights, domains, now, secret)
        except Stopped:
            raise
        except SourceError as exc:
            record = replace(record, error=str(exc), failing_since=record.failing_since or now)
            result.failed[name] = str(exc)
            read = f"read {record.fetched:%Y-%m-%d %H:%M} UTC" if record.fetched else "never read"
            log.warning("%s/%s: %s export (%s): %s; its last events are kept (%s)",
                        account.name, feed.unit, feed.channel, feed.host, exc, read)
        else:
            with counting:
                result.read.add(name)
                if changed:
                    result.fetched += 1
                else:
                    result.unchanged += 1
        book.feeds[name] = record

    workers = min(len(due), account.http.max_concurrency)
    named = f"{account_thread_name(account.name)}:imports"  # (sync/parallel.py: told in its block)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=named,
                            initializer=leave_signals_to_main) as pool:
        for future in [pool.submit(fetch, feed) for feed in due]:
            future.result()


def _fetch_one(client: HttpClient, feed: ChannelImport, record: FeedRecord, settings: ImportSettings,
               nights: tuple[dt.date, dt.date], domains: set[str], now: dt.datetime,
               secret: bytes) -> tuple[FeedRecord, bool]:
    """Return the export's record after one conditional GET, and whether it answered anew
    (False: 304, not modified). Raise SourceError (one line, no URL) if it fails, is too
    large or is not a calendar."""
    headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
    # Conditional only while the events kept cover today's window: as the window moves, the
    # nights past the last full read's end must be read (an unchanged export says 304).
    if record.fetched is not None and record.error is None and record.until is not None \
            and record.until >= nights[1]:
        if record.etag:
            headers["If-None-Match"] = record.etag
        if record.modified:
            headers["If-Modified-Since"] = record.modified
    conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
    operation = f"{feed.channel} export"
    try:
        answer = client.request("GET", feed.url, operation=operation, headers=headers)
    except HttpStatusError as exc:
        if exc.status == 304 and conditional:  # (only an answer to our conditional GET)
            return replace(record, fetched=now, error=None, failing_since=None), False
        if 300 <= exc.status < 400:
            raise SourceError(f"HTTP {exc.status}: the export link redirects; not followed (use the "
                              "link the channel shows now)") from None
        raise SourceError(f"HTTP {exc.status}") from None
    if len(answer.body) > settings.max_bytes:
        raise SourceError(f"answer of {len(answer.body)} bytes, above imports.max_bytes "
                          f"({settings.max_bytes})")
    events = channel_events(answer.body, nights[0] - dt.timedelta(days=1), nights[1], feed.zone, domains,
                            secret)
    validators = {name.lower(): value for name, value in answer.headers.items()}  # (any case)
    record = FeedRecord(now, validators.get("etag"), validators.get("last-modified"), events, until=nights[1])
    return record, True


def _our_domains(run: RunContext, account: Account) -> set[str]:
    """The UID domains of the account's feeds: the default one and every profile's."""
    return {run.config.feeds.uid_domain, *(p.uid_domain for p in account.profiles if p.uid_domain)}


def _conflicts(run: RunContext, account: Account, settings: ImportSettings, book: ImportBook,
               state: AccountState, stamps: FeedStamps, now: dt.datetime,
               open_orders: dict[str, Any] | None) -> dict[str, Conflict]:
    """Return the conflicts found now, by id; units without a published feed yet, or exports
    never read, are not compared."""
    names = UnitNames(state.folder, stamps)
    start, until = run.window.future(run.today)
    found: dict[str, Conflict] = {}
    escapia: dict[str, list[tuple[dt.date, dt.date]] | None] = {}
    for feed in settings.feeds:
        record = book.feeds.get(feed_name(feed.unit, feed.channel))
        if record is None or record.fetched is None:
            continue
        if feed.unit not in escapia:
            entry = stamps.get(account_feed_filename(account, feed.unit, names.generation(feed.unit)))
            ranges = stored_ranges(entry)
            escapia[feed.unit] = None if ranges is None else [(r.start, r.end) for r in ranges]
        ranges = escapia[feed.unit]
        if ranges is None:
            continue
        # A booking one of our work orders blocks, in force in Escapia (writeback.py).
        own = own_nights(book, feed_name(feed.unit, feed.channel), record.events, open_orders)
        # What the feed shows: whole ranges, runs of back-to-back ones (a channel may merge
        # them) and both as cut by the window (the events of the file itself).
        shown = {*ranges, *spans.normalize(ranges)}
        cut = {(max(s, run.window.start), min(e, run.window.end)) for s, e in shown
               if min(e, run.window.end) > max(s, run.window.start)}
        echoes = book.note_published(feed.unit, sorted(shown | cut), now) | (cut - shown)
        for conflict in find_conflicts(feed.unit, feed.channel, record.events, ranges, echoes, start, until,
                                       own, feed.blocks_are_bookings):
            found[conflict.id] = conflict
    return found


def _report(account: Account, book: ImportBook, found: dict[str, Conflict], result: ImportsResult,
            now: dt.datetime) -> None:
    """Say each new conflict once (an error) and each closed one (info); keep the open ones."""
    for key in sorted(set(found) - set(book.conflicts)):
        conflict = found[key]
        log.error("%s/%s: %s", account.name, conflict.unit, conflict.describe())
        result.new.append(key)
    for key in sorted(set(book.conflicts) - set(found)):
        gone = book.conflicts[key]
        log.info("%s/%s: resolved: %s", account.name, gone.get("unit"), gone.get("text", key))
        result.closed.append(key)
    open_now = {}
    for key, conflict in sorted(found.items()):
        since = moment(book.conflicts.get(key, {}).get("since")) or now
        open_now[key] = {"unit": conflict.unit, "channel": conflict.channel, "kind": conflict.kind,
                         "start": conflict.start.isoformat(), "end": conflict.end.isoformat(),
                         "nights": spans.encode(conflict.nights), "text": conflict.describe(),
                         "since": since.isoformat(timespec="seconds")}
    book.conflicts = open_now
    result.conflicts = open_now
