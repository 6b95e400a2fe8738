"""Prometheus metrics for node_exporter's textfile collector, derived from the status (status.db).

Written after every run (``metrics_file`` in the config) with prometheus_client, which
writes a temp file beside the target and renames it: the collector never reads half a file.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from escapia_ical.errors import PublishError
from escapia_ical.feeds import spans


def write_metrics(path: Path, status: dict[str, Any], now: dt.datetime,
                  channels: dict[str, Any] | None = None, accounts: set[str] | None = None) -> None:
    """Write the metrics of ``status`` (and of ``channels``, the channel fetches of
    channels.json: account -> unit -> channel -> entry) to ``path`` atomically, for
    ``accounts`` only when given (an account removed from the config would alert forever).
    Raise PublishError on failure."""
    if accounts is not None:
        kept = {a: e for a, e in status.get("accounts", {}).items() if a in accounts}
        status = {**status, "accounts": kept}
        channels = {a: u for a, u in channels.items() if a in accounts} if channels else channels
    registry = CollectorRegistry()
    registry.register(StatusCollector(status, now, channels))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise PublishError(f"cannot write metrics file {path}: {exc.strerror or exc}") from None


class StatusCollector(Collector):
    def __init__(self, status: dict[str, Any], now: dt.datetime, channels: dict[str, Any] | None = None):
        self.status, self.now, self.channels = status, now, channels

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        run = self.status.get("run", {})
        # Timestamps, not ages: an age is computed when the file is written and freezes when
        # cron stops; `time() - escapia_ical_last_run_timestamp_seconds` keeps growing.
        finished = [([], _timestamp(run.get("finished")))]
        yield _gauge("escapia_ical_last_run_timestamp_seconds", "When the last sync finished.", [], finished)
        yield _gauge("escapia_ical_run_finished_timestamp_seconds",
                     "When the last sync finished (older name of escapia_ical_last_run_timestamp_seconds).",
                     [], finished)
        yield _gauge("escapia_ical_run_duration_seconds", "How long the last sync took.",
                     [], [([], run.get("duration_seconds"))])
        yield _gauge("escapia_ical_run_exit_code", "Exit code of the last sync (0 = all fresh).",
                     [], [([], run.get("exit_code"))])
        accounts = self.status.get("accounts", {})
        every = [(a, u, e) for a, entry in accounts.items() for u, e in entry.get("units", {}).items()]
        # A retired unit's feed no longer updates on purpose: no age or failure to alert on.
        units = [(a, u, e) for a, u, e in every if not e.get("retired")]
        yield _gauge("escapia_ical_feed_retired", "1 for a unit no longer listed or selected (prune removes "
                     "its feed after feeds.retire_grace_days).", ["account", "unit"],
                     [([a, u], 1) for a, u, e in every if e.get("retired")])
        success = [([a, u], _timestamp(e.get("last_success"))) for a, u, e in units]
        yield _gauge("escapia_ical_feed_last_success_timestamp_seconds",
                     "When each feed was last published fresh.", ["account", "unit"], success)
        yield _gauge("escapia_ical_feed_last_change_timestamp_seconds",
                     "When each feed's content last changed.", ["account", "unit"],
                     [([a, u], _timestamp(e.get("last_change"))) for a, u, e in units])
        yield _gauge("escapia_ical_feed_age_seconds", "Seconds since each feed was last published fresh.",
                     ["account", "unit"],
                     [(labels, self.now.timestamp() - t) for labels, t in success if t is not None])
        yield _gauge("escapia_ical_feed_events", "Blocked ranges in each feed.", ["account", "unit"],
                     [([a, u], e.get("events")) for a, u, e in units])
        yield _gauge("escapia_ical_feed_failing", "1 if the last attempt for the feed failed.",
                     ["account", "unit"], [([a, u], 1 if e.get("last_error") else 0) for a, u, e in units])
        yield _gauge("escapia_ical_feed_held", "1 while the publish policy holds a loss of nights.",
                     ["account", "unit"], [([a, u], 1 if e.get("held") else 0) for a, u, e in units])
        yield _gauge("escapia_ical_feed_held_nights", "Future nights kept although Escapia frees them.",
                     ["account", "unit"], [([a, u], _held_nights(e.get("held"))) for a, u, e in units])
        yield _gauge("escapia_ical_account_last_success_timestamp_seconds",
                     "When a run last synced the account without an account-level failure.", ["account"],
                     [([a], _timestamp(e.get("last_success"))) for a, e in accounts.items()])
        yield _gauge("escapia_ical_account_breaker", "1 while the breaker holds every unexplained loss.",
                     ["account"], [([a], 1 if e.get("breaker") else 0) for a, e in accounts.items()])
        yield _gauge("escapia_ical_account_lock_stuck", "1 while a run that may be stuck holds the account.",
                     ["account"], [([a], 1 if e.get("lock_stuck") else 0) for a, e in accounts.items()])
        yield _gauge("escapia_ical_account_failing", "1 if the account failed as a whole last run.",
                     ["account"], [([a], 1 if e.get("last_error") else 0) for a, e in accounts.items()])
        yield _gauge("escapia_ical_unit_errors", "Units that failed in the last run.", ["account"],
                     [([a], e.get("unit_errors", 0)) for a, e in accounts.items()])
        yield _gauge("escapia_ical_units_fetched", "Units whose calendar the last run fetched.", ["account"],
                     [([a], e.get("units_fetched", 0)) for a, e in accounts.items()])
        yield _counter("escapia_ical_feeds_rewritten", "Feed files rewritten.", ["account"],
                       [([a], e.get("feeds_rewritten_total", 0)) for a, e in accounts.items()])
        yield _counter("escapia_ical_requests", "Requests sent to Escapia, by answer status.",
                       ["account", "operation", "status"],
                       [([a, *key.rsplit(" ", 1)], n) for a, e in accounts.items()
                        for key, n in e.get("responses_total", {}).items()])
        # The double-booking watch (imports/): open conflicts, and exports failing too long.
        conflicts = Counter((a, str(c.get("unit")), str(c.get("channel")), str(c.get("kind")))
                            for a, e in accounts.items() for c in (e.get("conflicts") or {}).values()
                            if isinstance(c, dict))
        yield _gauge("escapia_ical_conflicts", "Open conflicts between a channel's bookings and Escapia "
                     "(kind: unsynced, double_booking).", ["account", "unit", "channel", "kind"],
                     [(list(key), n) for key, n in sorted(conflicts.items())])
        yield _gauge("escapia_ical_import_failing", "1 while a channel export fails to be read (its last "
                     "events are kept).", ["account", "unit", "channel"],
                     [([a, *name.rsplit(" ", 1)], 1) for a, e in accounts.items()
                      for name in (e.get("imports_failing") or {})])
        if self.channels is not None:
            yield _gauge("escapia_ical_channel_last_fetch_timestamp_seconds",
                         "When each channel last fetched each feed (from the nginx access log).",
                         ["account", "unit", "channel"],
                         [([a, u, c], _timestamp(e.get("last"))) for a, units in self.channels.items()
                          for u, chans in units.items() for c, e in chans.items()])


def _gauge(name: str, doc: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        if value is not None:
            family.add_metric(values, float(value))
    return family


def _counter(name: str, doc: str, labels: list[str], samples) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, float(value))
    return family


def _held_nights(held: Any) -> int:
    lost = spans.decode(held.get("lost")) if isinstance(held, dict) else None
    return spans.count(lost or [])


def _timestamp(value: str | None) -> float | None:
    try:
        return dt.datetime.fromisoformat(value).timestamp() if value else None
    except ValueError:
        return None
