"""What is remembered between runs, in ``state_dir``.

Modes: state_dir itself 0750 when we create it and ``status.db`` 0640, so that a monitoring
user in state_dir's group can run ``escapia-ical status`` (see the README, "Monitoring" and
"State"); ``state.db`` (it holds the feed names, secret with feed tokens), every folder below
0700 and every other file 0600 (tokens are secrets).

Layout::

    state_dir/state.db                        every document but status and channels (escapia_ical.store)
    state_dir/status.db                       status (status.py) and channels (channels/)
    state_dir/status.lock                     turns at the status (sync/lock.py)
    state_dir/channels.lock                   one reader of the access log at a time (sync/lock.py)
    state_dir/accounts/<account>/sync.lock    one run at a time per account (sync/lock.py)
    state_dir/accounts/<account>/token.json   a cached bearer token (a secret; a file of its own)

The documents keep the names of the JSON files earlier versions wrote, and the code names
them by those paths (``state_dir/accounts/<account>/feeds.json`` is the document
``accounts/<account>/feeds`` of state.db; escapia_ical/store/documents.py maps them, and
this module re-exports its API): notices (sync/notices.py), and per account
identity (sync/identity.py), feeds (sync/stamps.py), changes (sync/incremental.py),
escapianet (sync/quiet.py), policy (feeds/holds.py), names (feeds/rotation.py). ``SPLITS``
says where each is split into rows, so that a write stores only what changed. Those JSON
files, when a database is first made, are taken in and renamed ``*.json.imported``.

A document is written in one transaction, so a crash leaves the old one or the new one.
State that cannot be read, or is not the expected shape, is a warning naming the database
and the document and is treated as absent (it is all re-derivable), never as fatal; the
next sync rewrites it. Only a database that cannot be opened (or is a newer version's)
fails the run (StateError).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from escapia_ical.errors import PublishError
from escapia_ical.feeds import range_text
from escapia_ical.feeds.names import is_feed_filename
from escapia_ical.feeds.publish import open_folder, write_at
from escapia_ical.store.documents import (  # noqa: F401 - the state API, re-exported
    ACCOUNT_DOCUMENTS,
    SHARED_FILE_MODE,
    SPLITS,
    STATE_DB,
    STATE_FILE_MODE,
    STATE_ROOT_MODE,
    STATUS_DB,
    _state_dir_of,
    close_stores,
    delete_state,
    describe,
    make_private_dir,
    read_json,
    read_state,
    state_bytes_written,
    state_transaction,
    write_state,
)

log = logging.getLogger(__name__)

STATE_DIR_MODE = 0o700
_SHOWN_PROBLEMS = 3  # per warning: a file can be wrong in thousands of places


def moment(value: Any) -> dt.datetime | None:
    """Return the time a state file wrote (ISO 8601 with its zone), or None for anything
    else (a time without a zone cannot be compared with now)."""
    try:
        found = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return found if found is not None and found.tzinfo is not None else None


def warn_shape(path: Path, problems: list[str]) -> None:
    """Log one warning naming the state document ``path`` and (the first few of) ``problems``."""
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    if len(problems) > _SHOWN_PROBLEMS:
        shown += f"; and {len(problems) - _SHOWN_PROBLEMS} more"
    log.warning("state %s is not as expected (%s); ignoring what is wrong, the next sync "
                "rewrites it", describe(path), shown)


def kind_of(value: Any) -> str:
    """Return how to name a JSON value's type in a message: "a list", "a string", ..."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def write_json(path: Path, data: Any, *, state_dir: Path | None = None,
               mode: int = STATE_FILE_MODE) -> None:
    """Write ``data`` to the file ``path`` (a token) atomically with ``mode`` (0600 unless told).

    ``state_dir`` (by default the one the layout above gives for ``path``) may be a
    symbolic link; the folders below it are made with mode 0700 and never followed.
    Raise PublishError if one of them is a link or the file cannot be written.
    """
    content = json.dumps(data, indent=1, sort_keys=True).encode("utf-8")
    root = state_dir if state_dir is not None else _state_dir_of(path)
    try:
        make_private_dir(root)
        folder = open_folder(path.parent, root, STATE_DIR_MODE)
        try:
            write_at(folder, path.name, content, mode)
        finally:
            os.close(folder)
    except OSError as exc:
        raise PublishError(f"cannot write state file {path}: {exc.strerror or exc}") from exc


# What each field of a feeds.json entry holds, when present; see sync/units.py build_feed.
_STAMP_FIELDS: dict[str, tuple[type, ...]] = {
    "unit": (str,), "digest": (str,), "dtstamp": (str,), "day": (str,), "retired": (str,),
    "withdrawn": (str,), "generation": (int,), "events": (int,), "ranges": (str, list), "blocks": (list,),
}


def _profiles_problem(value: Any) -> str | None:
    """What is wrong with an entry's ``profiles`` (sync/profiles.py): profile -> {file, digest,
    dtstamp, events, config, withdrawn, old: {file: since}}; None if nothing."""
    if not isinstance(value, dict):
        return f"{kind_of(value)}, not a mapping"
    for profile, record in value.items():
        if not isinstance(record, dict) or not isinstance(record.get("file"), str):
            return f"{str(profile)[:40]!r} is not a record with a file"
        for key in ("digest", "dtstamp", "config", "withdrawn"):
            if key in record and not isinstance(record[key], str):
                return f"{str(profile)[:40]!r}: {key} is {kind_of(record[key])}"
        old = record.get("old", {})
        if not isinstance(old, dict) or not all(isinstance(t, str) for t in old.values()):
            return f"{str(profile)[:40]!r}: old is not a mapping of names to times"
    return None


# Parts of a feeds.json entry that can be dropped alone (they are rebuilt by the next sync).
_OPTIONAL_PARTS = {
    "profiles": _profiles_problem,
    "kinds": lambda v: None if isinstance(v, str) else f"{kind_of(v)}, not a string",
}


class FeedStamps(dict):
    """feeds.json in memory: feed file name -> entry, plus an index of the names each unit
    is published under, kept as names are set and deleted (an entry's ``unit`` is never
    changed in place: set a new entry instead).

    Looking up a unit's names (its old names after a rotation, or its entry under an older
    name) is then O(1) instead of a scan of every entry per unit, which made a tick
    quadratic in the number of units (11 CPU s at 10,000 units for the old names alone).
    """

    def __init__(self, entries: Any = ()) -> None:
        super().__init__()
        # unit -> its one name, or the set of its names (after a rotation): a set per unit was
        # 11 MB at 50,000 units, and almost every unit has one name.
        self._by_unit: dict[str, str | set[str]] = {}
        for name, entry in dict(entries).items():
            self[name] = entry

    def __setitem__(self, name: str, entry: Any) -> None:
        if name in self:
            self._forget(name)
        super().__setitem__(name, entry)
        unit = entry.get("unit") if isinstance(entry, dict) else None
        if isinstance(unit, str):
            names = self._by_unit.get(unit)
            if names is None:
                self._by_unit[unit] = name
            elif isinstance(names, set):
                names.add(name)
            elif names != name:
                self._by_unit[unit] = {names, name}

    def __delitem__(self, name: str) -> None:
        self._forget(name)
        super().__delitem__(name)

    def pop(self, name: str, *default: Any) -> Any:
        if name in self:
            self._forget(name)
        return super().pop(name, *default)

    # Every other way a dict changes goes through the two methods above.
    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, entry in dict(*args, **kwargs).items():
            self[name] = entry

    def __ior__(self, other: Any) -> FeedStamps:
        self.update(other)
        return self

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name not in self:
            self[name] = default
        return self[name]

    def popitem(self) -> tuple[str, Any]:
        name = next(reversed(self))
        return name, self.pop(name)

    def clear(self) -> None:
        super().clear()
        self._by_unit.clear()

    def __reduce__(self) -> tuple:
        return FeedStamps, (dict(self),)

    def names_of(self, unit: str) -> set[str]:
        """Return every name the unit's feed is recorded under (a copy)."""
        names = self._by_unit.get(unit)
        return {names} if isinstance(names, str) else set(names or ())

    def _forget(self, name: str) -> None:
        entry = self.get(name)
        unit = entry.get("unit") if isinstance(entry, dict) else None
        if isinstance(unit, str):
            names = self._by_unit.get(unit)
            if isinstance(names, set):
                names.discard(name)
            elif names == name:
                del self._by_unit[unit]


def names_of(stamps: dict[str, Any], unit: str) -> set[str]:
    """Return the names ``stamps`` records for ``unit``: from the index of a FeedStamps, by a
    scan of a plain mapping."""
    if isinstance(stamps, FeedStamps):
        return stamps.names_of(unit)
    return {n for n, e in stamps.items() if isinstance(e, dict) and e.get("unit") == unit}


class AccountState:
    """The state files of one account."""

    def __init__(self, state_dir: Path, account: str):
        self.state_dir = state_dir
        self.folder = state_dir / "accounts" / account

    @property
    def token_path(self) -> Path:
        return self.folder / "token.json"

    @property
    def feeds_path(self) -> Path:
        return self.folder / "feeds.json"

    def feed_stamps(self) -> FeedStamps:
        """Return ``{feed file name: {"unit": ..., "digest": ..., "dtstamp": ISO, ...}}``
        (empty if none). Entries whose name is not a feed file name of ours (the name is
        written and deleted under: ``../x.ics`` must never be) or whose value is not the
        expected shape are left out, with one warning for the file."""
        data = read_state(self.feeds_path)
        if data is None:
            return FeedStamps()
        if not isinstance(data, dict):
            warn_shape(self.feeds_path, [f"expected a mapping of feed file names, not {kind_of(data)}"])
            return FeedStamps()
        stamps, problems = FeedStamps(), []
        for name, entry in data.items():
            problem = _stamp_problem(name, entry)
            if problem:
                problems.append(f"{name[:60]!r}: {problem}")
                continue
            for field, check in _OPTIONAL_PARTS.items():  # a part of its own: dropped, not the entry
                if field in entry and (why := check(entry[field])):
                    problems.append(f"{name[:60]!r}: {field} ignored ({why})")
                    del entry[field]
            ranges = entry.get("ranges")
            if isinstance(ranges, str) and not range_text.is_compact(ranges):  # as written before
                upgraded = range_text.upgraded(ranges)
                if upgraded is not None:  # (unreadable: left as it is; the unit is fetched)
                    entry["ranges"] = upgraded
            stamps[name] = entry
        if problems:
            warn_shape(self.feeds_path, problems)
        return stamps

    def save_feed_stamps(self, stamps: dict[str, dict[str, Any]]) -> None:
        write_state(self.feeds_path, stamps)


_RIGHT_SHAPES: set[tuple] = set()  # the shapes of entries found right so far


def shape_of(entry: dict[str, Any]) -> tuple:
    """An entry's keys and the exact types of their values (bool is not int): entries of
    the same shape pass or fail the same type checks, so a shape found right once need not
    be checked again (here and in status.py)."""
    return (*entry, *map(type, entry.values()))


def _stamp_problem(name: str, entry: Any) -> str | None:
    """Return what is wrong with one feeds.json entry, or None if nothing is."""
    if not is_feed_filename(name):
        return "not a feed file name"
    if not isinstance(entry, dict):
        return f"expected a mapping, not {kind_of(entry)}"
    # Entries share a few shapes: a shape found right once is known right (10,000 entries
    # a tick; a check each was 9 µs, this 1).
    shape = shape_of(entry)
    if shape in _RIGHT_SHAPES:
        return None
    fields = _STAMP_FIELDS
    if all(field not in fields or (isinstance(value, fields[field]) and value is not True
                                   and value is not False) for field, value in entry.items()):
        if len(_RIGHT_SHAPES) < 1_000:
            _RIGHT_SHAPES.add(shape)
        return None
    for field, types in fields.items():  # the first wrong one in a stable order, for the message
        value = entry.get(field)
        if field in entry and (not isinstance(value, types) or isinstance(value, bool)):
            return f"{field} is {kind_of(value)}"
    return None
