"""What is remembered of channel fetches: ``state_dir/channels.json``.

One file holds both where the log was last read and what was counted from it, so that a
crash leaves either the old pair or the new one, and never counts a line twice::

    {"version": 1,
     "log": {"path": "/var/log/nginx/escapia-ical.access.log", "position": {...}},
     "read": {"at": ISO, "lines": n, "malformed": n, "ignored": n, "behind": false, "error": null},
     "feeds": {"<account>": {"<unit id>": {"<channel>": {"first": ISO, "last": ISO,
                                                        "status": 200, "count": 42}}}}}

Feeds are keyed by unit id, never by file name (a secret feed URL stays out of it) and no
client address is ever stored. The file is 0640 like status.json: ``status`` reads it
as the monitoring user. What is not the expected shape is a warning and left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escapia_ical.channels.agents import OTHER
from escapia_ical.channels.logformat import Tally
from escapia_ical.channels.logreader import LogPosition
from escapia_ical.state import kind_of, read_state, warn_shape, write_state

CHANNELS_VERSION = 1


def channels_path(state_dir: Path) -> Path:
    return state_dir / "channels.json"


@dataclass
class ChannelBook:
    """Per account, unit and channel: first and last fetch (ISO, UTC), last status, count;
    plus where the access log was last read and how that read went."""

    state_dir: Path
    log_path: str | None = None
    position: LogPosition | None = None
    read: dict[str, Any] = field(default_factory=dict)
    feeds: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> ChannelBook:
        """Return the book stored in state_dir, or an empty one (missing, unreadable, or
        another version: with a warning naming the file). Entries of the wrong shape are
        left out, with one warning."""
        book, path = cls(state_dir), channels_path(state_dir)
        data = read_state(path)
        if data is None:
            return book
        if not isinstance(data, dict) or data.get("version") != CHANNELS_VERSION:
            found = kind_of(data) if not isinstance(data, dict) else f"version {data.get('version')!r}"
            warn_shape(path, [f"expected a mapping of version {CHANNELS_VERSION}, not {found}"])
            return book
        problems: list[str] = []
        log = data.get("log")
        if isinstance(log, dict) and isinstance(log.get("path"), str):
            book.log_path = log["path"]
            book.position = LogPosition.from_json(log.get("position"))
            if log.get("position") is not None and book.position is None:
                problems.append("log.position is not a log position")
        elif log is not None:
            problems.append("log is not a mapping with a path")
        book.read = data["read"] if isinstance(data.get("read"), dict) else {}
        feeds = data.get("feeds", {})
        if not isinstance(feeds, dict):
            problems.append(f"feeds is {kind_of(feeds)}, not a mapping")
            feeds = {}
        for account, units in feeds.items():
            for unit, channels in (units.items() if isinstance(units, dict) else ()):
                for channel, entry in (channels.items() if isinstance(channels, dict) else ()):
                    if _is_fetch(entry):
                        book.feeds.setdefault(account, {}).setdefault(unit, {})[channel] = entry
                    else:
                        problems.append(f"feeds.{account[:40]}.{unit[:40]}.{channel[:40]} is not a fetch")
            if not isinstance(units, dict):
                problems.append(f"feeds.{account[:40]} is {kind_of(units)}, not a mapping")
        if problems:
            warn_shape(path, problems)
        return book

    def save(self) -> None:
        """Write the book atomically (0640). Raise PublishError if it cannot be written."""
        data = {"version": CHANNELS_VERSION, "read": self.read, "feeds": self.feeds,
                "log": {"path": self.log_path,
                        "position": self.position.to_json() if self.position else None}}
        write_state(channels_path(self.state_dir), data)

    def merge(self, tally: Tally) -> None:
        """Add the fetches of ``tally`` (keyed by (account, unit), channel)."""
        for ((account, unit), channel), fetch in tally.fetches.items():
            entry = self.feeds.setdefault(account, {}).setdefault(unit, {}).get(channel)
            first, last = iso(fetch.first), iso(fetch.last)
            if entry is None:
                self.feeds[account][unit][channel] = {"first": first, "last": last, "status": fetch.status,
                                                      "count": fetch.count}
                continue
            entry["count"] += fetch.count
            entry["first"] = min(entry["first"], first, key=_moment)
            if _moment(last) >= _moment(entry["last"]):
                entry["last"], entry["status"] = last, fetch.status

    def forget(self, now: dt.datetime, after: dt.timedelta) -> list[tuple[str, str, str]]:
        """Drop every channel not seen fetching its feed for ``after``; return them
        (account, unit, channel): a channel disconnected on purpose stops being warned
        about."""
        gone = []
        for account, units in self.feeds.items():
            for unit, channels in units.items():
                for channel, entry in list(channels.items()):
                    if now - _moment(entry["last"]) > after:
                        del channels[channel]
                        gone.append((account, unit, channel))
        self.feeds = {a: {u: c for u, c in units.items() if c} for a, units in self.feeds.items()}
        self.feeds = {a: units for a, units in self.feeds.items() if units}
        return gone


def silence_notes(book: ChannelBook, now: dt.datetime, silence: dt.timedelta,
                  wanted: dict[str, Any]) -> list[dict[str, str]]:
    """Return one note per feed and named channel (never "other": browsers, curl) that
    fetched the feed before but not within ``silence``, for the units ``wanted`` (account
    -> "all" or unit ids) still publishes; and one if the last read of the log failed."""
    notes = []
    error = book.read.get("error")
    if isinstance(error, str) and error:
        notes.append({"account": None, "problem": f"channel fetch log: {error} (at {book.read.get('at')})"})
    for account, units in sorted(book.feeds.items()):
        if account not in wanted:
            continue
        for unit, channels in sorted(units.items()):
            if wanted[account] != "all" and unit not in wanted[account]:
                continue
            for channel, entry in sorted(channels.items()):
                age = now - _moment(entry["last"])
                if channel != OTHER and age > silence:
                    notes.append({"account": account, "problem": (
                        f"{unit}: {channel} has not fetched this feed for {_hours(age)} (last fetch "
                        f"{entry['last']}, HTTP {entry['status']}), more than silence_hours "
                        f"{_hours(silence)}: is the channel's calendar sync still connected?")})
    return notes


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).isoformat()


def _hours(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f}h" if hours >= 10 else f"{hours:.1f}h".replace(".0h", "h")


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _is_fetch(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    try:
        times_ok = all(_moment(entry[k]).tzinfo is not None for k in ("first", "last"))
    except (KeyError, TypeError, ValueError):
        return False
    counts = (entry.get("status"), entry.get("count"))
    return times_ok and all(isinstance(n, int) and not isinstance(n, bool) for n in counts)
