"""What an account remembers of its channel imports (``imports.json`` of the account's
state): per channel export, its HTTP validators, when it was last read and the events it
held (dates and opaque keys only); per unit, the ranges our feed showed and when each went
(echo detection); and the conflicts open now, since when.

Every part is re-derivable: a wrong-shaped part is dropped with one warning and the next
fetch rebuilds it (a conflict dropped is reported again, once).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.imports.parse import ChannelEvent
from escapia_ical.state import moment, read_state, warn_shape, write_state

VERSION = 1
ECHO_HOURS = 48  # how long a block we stopped publishing may still come back from a channel


@dataclass
class FeedRecord:
    """One channel export of one unit, as last read."""

    fetched: dt.datetime | None = None  # the last complete answer (200 or 304)
    etag: str | None = None
    modified: str | None = None
    events: list[ChannelEvent] = field(default_factory=list)
    error: str | None = None  # the last attempt's failure, if it failed
    failing_since: dt.datetime | None = None
    until: dt.date | None = None  # the end of the window the events were read for

    def to_json(self) -> dict[str, Any]:
        return {"fetched": _iso(self.fetched), "etag": self.etag, "modified": self.modified,
                "events": [[e.start.isoformat(), e.end.isoformat(), e.key, int(e.ours), int(e.block)]
                           for e in self.events],
                "error": self.error, "failing_since": _iso(self.failing_since),
                "until": self.until.isoformat() if self.until else None}

    @classmethod
    def from_json(cls, data: Any) -> FeedRecord | None:
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            return None
        try:
            events = [ChannelEvent(dt.date.fromisoformat(s), dt.date.fromisoformat(e), bool(o), str(k),
                                   bool(b)) for s, e, k, o, b in data["events"]]
        except (TypeError, ValueError):
            return None
        if any(e.end <= e.start for e in events):
            return None
        text = {k: v if isinstance(v, str) else None for k, v in data.items()}
        try:
            until = dt.date.fromisoformat(text["until"]) if text.get("until") else None
        except ValueError:
            until = None
        return cls(moment(data.get("fetched")), text.get("etag"), text.get("modified"), events,
                   text.get("error"), moment(data.get("failing_since")), until)


@dataclass
class ImportBook:
    """``imports.json`` of one account."""

    path: Path
    feeds: dict[str, FeedRecord] = field(default_factory=dict)  # "<unit> <channel>" -> record
    published: dict[str, dict[str, str]] = field(default_factory=dict)  # unit -> "s/e" -> "" or gone at
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # conflict id -> what it is
    # Write-back (imports/writeback.py): "<unit> <channel> <event identity>" -> the work order
    # of ours that blocks it; and the account's write-back state (a 403's time).
    writes: dict[str, dict[str, Any]] = field(default_factory=dict)
    write_back: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> ImportBook:
        path = folder / "imports.json"
        book = cls(path)
        data = read_state(path)
        if data is None:
            return book
        problems: list[str] = []
        if not isinstance(data, dict) or data.get("version") != VERSION:
            warn_shape(path, [f"not an imports state of version {VERSION}"])
            return book
        for name, value in _mapping(data, "feeds", problems).items():
            record = FeedRecord.from_json(value)
            if record is None:
                problems.append(f"feeds[{name[:60]!r}]")
            else:
                book.feeds[name] = record
        for unit, ranges in _mapping(data, "published", problems).items():
            if isinstance(ranges, dict) and all(isinstance(v, str) for v in ranges.values()) \
                    and all(spans.decode(r) for r in ranges):
                book.published[unit] = ranges
            else:
                problems.append(f"published[{unit[:60]!r}]")
        for key, value in _mapping(data, "conflicts", problems).items():
            if isinstance(value, dict) and moment(value.get("since")) is not None:
                book.conflicts[key] = value
            else:
                problems.append(f"conflicts[{key[:60]!r}]")
        for key, value in _mapping(data, "writes", problems).items():
            if isinstance(value, dict) and isinstance(value.get("order"), str) and \
                    all(isinstance(value.get(k), str) for k in ("start", "end")):
                book.writes[key] = value
            else:  # (its work order stays in Escapia: said, so that someone closes it)
                order = value.get("order") if isinstance(value, dict) else "?"
                problems.append(f"writes[{key[:60]!r}] (work order {str(order)[:20]}: close it by hand)")
        book.write_back = _mapping(data, "write_back", problems)
        if problems:
            warn_shape(path, [f"{p} ignored" for p in problems])
        return book

    def save(self) -> None:
        write_state(self.path, {
            "version": VERSION,
            "feeds": {name: record.to_json() for name, record in sorted(self.feeds.items())},
            "published": dict(sorted(self.published.items())),
            "conflicts": dict(sorted(self.conflicts.items())),
            "writes": dict(sorted(self.writes.items())),
            "write_back": self.write_back,
        })

    def note_published(self, unit: str, ranges: list[Span], now: dt.datetime) -> set[Span]:
        """Record the whole ranges our feed for ``unit`` shows now; return those it stopped
        showing in the last ECHO_HOURS (a channel may still echo them back)."""
        known = self.published.setdefault(unit, {})
        current = {f"{s.isoformat()}/{e.isoformat()}" for s, e in ranges}
        for text in current:
            known[text] = ""
        for text, gone in list(known.items()):
            if text in current:
                continue
            when = moment(gone)
            if when is None:
                known[text] = _iso(now) or ""
            elif now - when > dt.timedelta(hours=ECHO_HOURS):
                del known[text]
        return {span for text, gone in known.items() if gone for span in spans.decode(text) or []}

    def forget_units(self, keep: set[str], feeds: set[str]) -> None:
        """Drop what belongs to imports no longer configured (units in ``keep``, feed names in
        ``feeds``), and their conflicts."""
        for name in set(self.feeds) - feeds:
            del self.feeds[name]
        for unit in set(self.published) - keep:
            del self.published[unit]
        for key, value in list(self.conflicts.items()):
            if f"{value.get('unit')} {value.get('channel')}" not in feeds:
                del self.conflicts[key]


def feed_name(unit: str, channel: str) -> str:
    return f"{unit} {channel}"


def _mapping(data: dict, key: str, problems: list[str]) -> dict:
    value = data.get(key, {})
    if isinstance(value, dict):
        return value
    problems.append(key)
    return {}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
