"""State documents by name: which database holds each, how it is split and encoded, how
the JSON files of earlier versions are taken in (see escapia_ical.state for the layout).

The rest of the program names a document by the path of the JSON file an earlier version
kept it in (``state_dir/accounts/<account>/feeds.json`` is the document
``accounts/<account>/feeds`` of state.db); this module maps such a path to its database
(:mod:`.sqlite`, opened once per process) and key, and back for messages (``describe``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from escapia_ical.errors import PublishError, StateError
from escapia_ical.store import Split, Store
from escapia_ical.store.sqlite import Corrupt, SqliteStore

log = logging.getLogger("escapia_ical.state")

STATE_FILE_MODE = 0o600
STATE_ROOT_MODE = 0o750  # state_dir: its group may read status.db, nothing below
SHARED_FILE_MODE = 0o640  # status.db


# Where each state document lives, and where it is split (escapia_ical.store): the entries
# of these mappings are kept in rows of their own (in chunks, escapia_ical.store), so a tick
# rewrites only the ones that changed.
STATE_DB, STATUS_DB = "state.db", "status.db"
_SHARED = {"status.json", "channels.json"}  # in status.db (0640): read by the monitoring group
SPLITS: dict[str, Split] = {
    "feeds.json": ((),),
    "changes.json": ((), ("fetched",), ("reservations",)),
    "escapianet.json": ((), ("stamps",)),
    "policy.json": ((), ("units",)),
    "names.json": ((), ("generations",)),
    "status.json": ((), ("accounts",), ("accounts", "*"), ("accounts", "*", "units"), ("runs",)),
    "channels.json": ((), ("feeds",), ("feeds", "*")),
    "imports.json": ((), ("feeds",), ("published",), ("conflicts",), ("writes",)),
}
# The documents of an account (accounts/<account>/<name>); token.json stays a file of its own.
ACCOUNT_DOCUMENTS = ("identity.json", "feeds.json", "changes.json", "escapianet.json", "policy.json",
                     "names.json", "imports.json")
_IMPORTED = "store/imported"  # written with the import of the JSON state files, in one transaction

_stores: dict[Path, Store | None] = {}
_stores_lock = threading.Lock()
# state_dirs whose documents live in PostgreSQL (config ``state: {backend: postgresql}``):
# state_dir -> (dsn, schema, how messages name it). Tokens and locks stay in state_dir.
_remote: dict[Path, tuple[str, str, str]] = {}


def use_postgresql(state_dir: Path, dsn: str | None, schema: str = "escapia_ical",
                   where: str = "PostgreSQL") -> None:
    """Keep the documents of ``state_dir`` in the PostgreSQL database at ``dsn`` (None: in
    its SQLite files again). Stores already open are closed."""
    close_stores()
    if dsn is None:
        _remote.pop(state_dir, None)
    else:
        _remote[state_dir] = (dsn, schema, where)


def read_json(path: Path) -> Any | None:
    """Return the JSON stored in the file ``path`` (a token), or None if it is missing or
    unreadable (with a warning naming the file: it is then treated as absent)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON
        reason = exc.strerror if isinstance(exc, OSError) else exc.__class__.__name__ + ": " + str(exc)
        log.warning("state file %s is unreadable (%s); treating it as absent", path, reason)
        return None


# In the stored feed records, the day most of them were rendered for is kept once, under a
# key no feed file has ("" -> {"day": ...}), and "=" in the records that share it: the daily
# roll moves every record's day, and written per record that was 15 MB a day at 10,000 units.
_SHARED_KEY, _SAME_DAY = "", "="
_NOTHING = object()


@contextlib.contextmanager
def _compacted_feeds(stamps: Any) -> Iterator[Any]:
    """The feed records as stored, for the duration of the write: those of the most common
    day say "=" (in place, and set back after: a compacted copy of 50,000 records was 15 MB
    of a cold sync's peak memory), and that day is kept under the shared key (put in the
    mapping itself, and taken out after: a copy of a mapping of 50,000 was 3 MB more)."""
    if not isinstance(stamps, dict):
        yield stamps
        return
    days = Counter(entry["day"] for entry in stamps.values()
                   if isinstance(entry, dict) and isinstance(entry.get("day"), str))
    if not days:
        yield stamps
        return
    day = days.most_common(1)[0][0]
    sharing = [entry for name, entry in stamps.items()
               if name != _SHARED_KEY and isinstance(entry, dict) and entry.get("day") == day]
    held = stamps.get(_SHARED_KEY, _NOTHING)  # (nothing, but in a mapping made by hand)
    stamps[_SHARED_KEY] = {"day": day}
    try:
        for entry in sharing:
            entry["day"] = _SAME_DAY
        yield stamps
    finally:
        for entry in sharing:
            entry["day"] = day
        if held is _NOTHING:
            del stamps[_SHARED_KEY]
        else:
            stamps[_SHARED_KEY] = held


def _expand_feeds(stored: Any) -> Any:
    if not isinstance(stored, dict):
        return stored
    shared = stored.pop(_SHARED_KEY, None)
    day = shared.get("day") if isinstance(shared, dict) else None
    for entry in stored.values():
        if isinstance(entry, dict) and entry.get("day") == _SAME_DAY:
            if isinstance(day, str):
                entry["day"] = day
            else:
                del entry["day"]  # unknown: rendered again at the next run
    return stored


# How a document is stored when that differs from what the program holds (see above):
# (a context giving the value to write, the value read made what the program holds).
_CODECS = {"feeds.json": (_compacted_feeds, _expand_feeds)}
_PLAIN = (contextlib.nullcontext, lambda value: value)


def read_state(path: Path) -> Any | None:
    """Return the state document ``path`` names (``state_dir/accounts/<account>/feeds.json``
    names the document ``accounts/<account>/feeds`` of state.db), or None if there is none.
    Reading never creates a database (``--dry-run`` writes nothing): before the first write
    of an upgraded installation, the JSON file of an earlier version is read as it is.
    Raise StateError if the database cannot be read."""
    store, key = _locate(path)
    if store is None and path.name != "token.json":
        found = read_json(path)
        if found is not None or path.exists():
            return found
        store, key = _locate(path)  # another thread may just have taken it in (and renamed it)
    return _CODECS.get(path.name, _PLAIN)[1](store.read(key)) if store is not None else None


def write_state(path: Path, data: Any) -> int:
    """Store the state document ``path`` names; return the bytes written (only the rows
    that changed). Raise StateError (a PublishError) if it cannot be written."""
    store, key = _locate(path, create=True)
    assert store is not None
    with _CODECS.get(path.name, _PLAIN)[0](data) as stored:
        return store.write(key, stored, SPLITS.get(path.name, ()))


def delete_state(path: Path) -> None:
    """Forget the state document ``path`` names (a token file: remove it)."""
    if path.name == "token.json":
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    store, key = _locate(path)
    if store is not None:
        store.delete(key)


def state_transaction(state_dir: Path) -> contextlib.AbstractContextManager[None]:
    """A context in which the writes to state.db commit together (an account's feed
    records, held losses and change-feed cursor after a run), or not at all."""
    store, _ = _locate(state_dir / "notices.json", create=True)
    assert store is not None
    return store.transaction()


def describe(path: Path | str) -> str:
    """Name a state document for a message: ``/var/lib/x/state.db (accounts/a/feeds)``."""
    path = Path(path)
    if path.name == "token.json":
        return str(path)
    state_dir = _state_dir_of(path)
    try:
        if state_dir in _remote:
            return f"{_remote[state_dir][2]} ({_key(path, state_dir)})"
        return f"{state_dir / _database(path)} ({_key(path, state_dir)})"
    except ValueError:
        return str(path)


def state_bytes_written() -> int:
    """The bytes of state written by this process so far (rows that changed)."""
    with _stores_lock:
        return sum(store.bytes_written for store in _stores.values() if store is not None)


def close_stores() -> None:
    """Close every database opened (the next use opens it again)."""
    with _stores_lock:
        for store in _stores.values():
            if store is not None:
                store.close()
        _stores.clear()


def _database(path: Path) -> str:
    return STATUS_DB if path.name in _SHARED else STATE_DB


def _key(path: Path, state_dir: Path) -> str:
    relative = path.relative_to(state_dir).as_posix()
    return relative[:-len(".json")] if relative.endswith(".json") else relative


def postgresql_of(state_dir: Path) -> tuple[str, str, str] | None:
    """(dsn, schema, how messages name it) if ``state_dir``'s documents live in PostgreSQL."""
    return _remote.get(state_dir)


def _locate(path: Path, *, create: bool = False) -> tuple[Store | None, str]:
    """Return the store holding ``path``'s document (None: it does not exist, and may not
    be created by this user) and the document's key."""
    state_dir = _state_dir_of(path)
    shared = path.name in _SHARED
    db = state_dir / _database(path)
    with _stores_lock:
        if state_dir in _remote:
            if _stores.get(db) is None:
                _stores[db] = _open_remote(state_dir, shared, *_remote[state_dir])
        elif db not in _stores or (_stores[db] is None and (create or db.exists())):
            _stores[db] = _open(state_dir, db, shared, create)
        return _stores[db], _key(path, state_dir)


def _open_remote(state_dir: Path, shared: bool, dsn: str, schema: str, where: str) -> Store:
    """Open the PostgreSQL store of status (``shared``) or of everything else. The first
    time, it takes in what this host kept before: state_dir's SQLite file, else the JSON
    state files of earlier versions (held losses and feed records are not lost). Decided
    under a lock of the database: hosts starting together import once, never a mix.
    A local SQLite file left unread (another host's state was taken in first) is named in
    a warning at every run, as are JSON state files left unread (:func:`_settle_left_json`)."""
    from escapia_ical.store.postgresql import PostgresStore  # only this backend needs psycopg

    store = PostgresStore(dsn, "status" if shared else "state", schema, where=where)
    local = state_dir / (STATUS_DB if shared else STATE_DB)
    imported = store.read(_IMPORTED)
    if imported is None:
        with store.transaction(lock="import"):
            if store.read(_IMPORTED) is None:  # (another host may have imported while we waited)
                if local.is_file() and not local.is_symlink():
                    _import_database(store, local)
                else:  # (renamed below, once committed: this transaction holds the import's)
                    _import_json(store, state_dir, shared, rename=False)
            imported = store.read(_IMPORTED)
    mine = isinstance(imported, dict) and imported.get("host") == socket.gethostname() \
        and imported.get("from") == str(local)
    if local.is_file() and not mine:
        when = imported.get("at", "?") if isinstance(imported, dict) else "?"
        log.warning("state: %s of this host is not read: %s took in other state at %s (from host %s); "
                    "its held losses and feed records are not used. Move it away if that is right, or "
                    "empty the database's schema and run this host first", local, where, when,
                    imported.get("host", "?") if isinstance(imported, dict) else "?")
    _settle_left_json(state_dir, shared, imported, store.path, same_host=True)  # (never read here either)
    return store


def _import_database(store: Store, local: Path) -> None:
    """Copy every document of the SQLite database ``local`` into ``store`` (one transaction,
    once: decided inside it, so that hosts starting together copy once). The file is left
    as it is, and no longer read."""
    source = SqliteStore(local, readonly=True)
    try:
        with store.transaction():
            if store.read(_IMPORTED) is not None:
                return
            keys = [key for key in source.keys() if key != _IMPORTED]  # noqa: SIM118 - a store, not a dict
            for key in keys:
                value = source.read(key)
                if value is not None:
                    store.write(key, value, SPLITS.get(key.rsplit("/", 1)[-1] + ".json", ()))
            store.write(_IMPORTED, {"at": dt.datetime.now(dt.UTC).isoformat(), "from": str(local),
                                    "host": socket.gethostname(),
                                    "documents": len(keys)})
    finally:
        source.close()
    log.warning("state: %d document(s) of %s taken into %s; the file is no longer read (it may be "
                "deleted)", len(keys), local, store.path)


def _open(state_dir: Path, db: Path, shared: bool, create: bool) -> SqliteStore | None:
    """Open ``db``: read-only for a user who may not write it (the monitoring group reading
    status.db); None if it is missing and this is not a write. A new (or not yet imported)
    database takes in the JSON state files of earlier versions. A file that is not a
    database (or a damaged one) is moved aside, with a warning, and the state starts afresh
    (it is all re-derivable), as an unreadable JSON file was treated as absent."""
    if not db.exists() and not create:
        return None
    if not create and not os.access(db, os.W_OK):
        return SqliteStore(db, readonly=True, wal=not shared)
    try:
        make_private_dir(state_dir)
    except OSError as exc:
        raise PublishError(f"cannot create state_dir {state_dir}: {exc.strerror or exc}") from exc
    mode = SHARED_FILE_MODE if shared else STATE_FILE_MODE
    try:
        store = SqliteStore(db, mode, wal=not shared)
        imported = store.read(_IMPORTED)
    except Corrupt as exc:
        aside = db.with_name(f"{db.name}.corrupt-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
        try:
            db.rename(aside)
            for suffix in ("-wal", "-shm", "-journal"):
                db.with_name(db.name + suffix).unlink(missing_ok=True)
        except OSError as moved:
            raise StateError(f"{exc}; it could not be moved aside ({moved.strerror}): move it away to "
                             "start afresh") from exc
        log.warning("%s; moved aside to %s, the state starts afresh (the next runs fetch every unit)",
                    exc, aside.name)
        store, imported = SqliteStore(db, mode, wal=not shared), None
    if imported is None:
        _import_json(store, state_dir, shared)
    else:
        _settle_left_json(state_dir, shared, imported, store.path)
    return store


def _legacy_files(state_dir: Path, shared: bool) -> list[Path]:
    """The JSON state files of earlier versions that would go into this database."""
    files = [state_dir / name for name in (sorted(_SHARED) if shared else ["notices.json"])]
    if not shared:
        files += [folder / name for folder in sorted((state_dir / "accounts").glob("*"))
                  if folder.is_dir() and not folder.is_symlink() for name in ACCOUNT_DOCUMENTS]
    return [f for f in files if f.is_file() and not f.is_symlink()]


def _fingerprint(file: Path) -> list[int] | None:
    """The file's inode, size and modification time (None if it cannot be seen): taken
    before it is read, so that a file written again since (an earlier version rewrites
    its files whole, as new inodes) never matches what was read."""
    try:
        seen = os.stat(file, follow_symlinks=False)
    except OSError:
        return None
    return [seen.st_ino, seen.st_size, seen.st_mtime_ns]


def _settle_left_json(state_dir: Path, shared: bool, imported: Any, where: object,
                      same_host: bool = False) -> None:
    """JSON state files of earlier versions beside a database that took in its JSON already.

    Those the import read, untouched since (a kill between the import's commit and its
    renames), are renamed ``*.json.imported`` now, as the import would have, with its
    warning. Any other (an earlier version ran after the upgrade) is named in a warning:
    it is not read. ``same_host``: only if this host made the import (a database shared by
    hosts; a SQLite file sits beside the files it took in, whatever the host is called)."""
    left = _legacy_files(state_dir, shared)
    if not left:
        return
    taken = imported.get("taken") if isinstance(imported, dict) else None
    if isinstance(taken, dict) and (not same_host or imported.get("host") == socket.gethostname()):
        renamed = _finish_import(state_dir, taken, left, where)
        left = [file for file in left if file not in renamed]
    left = [file for file in left if file.is_file()]  # (not one another process renamed meanwhile)
    if left:
        when = imported.get("at", "?") if isinstance(imported, dict) else "?"
        log.warning("state: %d JSON state file(s) of an earlier version (e.g. %s) are not read: %s took in "
                    "the JSON state at %s and holds the state since; delete them, or move the database "
                    "away to take them in again", len(left), left[0], where, when)


def _finish_import(state_dir: Path, taken: dict[str, Any], files: list[Path], where: object) -> list[Path]:
    """Rename ``*.json.imported`` each of ``files`` still as the import read it (its
    fingerprint is the one ``taken`` records), with the import's warning; return those
    renamed. One written since stays (and is named unread by the next open); one this user
    may not rename stays as it is: nothing of either is lost."""
    renamed = []
    for file in files:
        seen = _fingerprint(file)
        if seen is None or taken.get(str(file.relative_to(state_dir))) != seen:
            continue
        with contextlib.suppress(OSError):
            file.rename(file.with_name(file.name + ".imported"))
            renamed.append(file)
    if renamed:
        log.warning("state: %d JSON state file(s) of an earlier version taken into %s (renamed "
                    "*.json.imported; they may be deleted)", len(renamed), where)
    return renamed


def _import_json(store: Store, state_dir: Path, shared: bool, rename: bool = True) -> None:
    """Take the JSON state files of earlier versions into ``store`` (one transaction), then
    rename each one read to ``*.json.imported``: they are not read again (and may be deleted).
    The import is decided inside its transaction, so that two processes import once. The
    record of the import keeps each file's fingerprint: a kill after the commit, before the
    renames, leaves the files, and the next open renames those still as they were read
    (:func:`_settle_left_json`). Without ``rename`` (the caller's transaction holds this
    one: nothing is committed on return), the caller renames them, after its commit."""
    found = _legacy_files(state_dir, shared)
    taken: dict[str, list[int] | None] = {}
    with store.transaction():
        if store.read(_IMPORTED) is not None:  # another process did it meanwhile (we waited for its turn)
            return
        for file in found:
            seen = _fingerprint(file)  # (before the read: a file written since never matches it)
            data = read_json(file)
            if data is not None:
                with _CODECS.get(file.name, _PLAIN)[0](data) as stored:
                    store.write(_key(file, state_dir), stored, SPLITS.get(file.name, ()))
            if data is not None or os.access(file, os.R_OK):  # garbage is absent, as it was before
                taken[str(file.relative_to(state_dir))] = seen
        store.write(_IMPORTED, {"at": dt.datetime.now(dt.UTC).isoformat(), "files": len(taken),
                                "host": socket.gethostname(), "taken": taken})
    if rename:
        _finish_import(state_dir, taken, found, store.path)


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` and any missing parents with mode 0750 (mkdir's ``parents``
    would give the parents the umask's mode). For state_dir itself, the operator's folder:
    a link is followed; the folders below it are made by write_json, which never does."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(mode=STATE_ROOT_MODE, exist_ok=True)


def _state_dir_of(path: Path) -> Path:
    """Return the state_dir of a state file, by its name (never by its folders' names: a
    state_dir may itself sit in a folder called ``accounts``): the folder of status,
    channels and notices; three levels up for a file of an account
    (``accounts/<account>/<file>``)."""
    if path.name in (*ACCOUNT_DOCUMENTS, "token.json"):
        return path.parent.parent.parent
    return path.parent


