"""The SQLite store (stdlib ``sqlite3``): the embedded default.

One database file, one table of rows ``(key, part, body)``: ``part`` is the JSON list of
mapping keys a row sits at (``[]`` for the document itself), ``body`` its JSON. With
``synchronous=FULL`` a commit is on disk when it returns (a held loss or a published feed's
record is never lost to a power cut). The WAL journal lets readers (the report) neither wait
for a writer nor hold one up; a database that users who may not write it read (status.db,
the monitoring group) keeps the rollback journal instead (``wal=False``): with WAL they could
not open it while no writer has it open (SQLite must then create its ``-shm`` file). Their
reads wait at most for a commit (milliseconds). Every wait for another process's write is bounded
(``BUSY_SECONDS``). The schema is versioned (``PRAGMA user_version``); ``MIGRATIONS`` brings
an older file forward when it is opened, in one transaction; a file written by a newer
version of the program is refused, never rewritten.

One connection per file and process, shared by the accounts synced in parallel (threads)
under a lock: a write of one document is one short transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from escapia_ical.errors import StateError
from escapia_ical.store import Split, flatten, read_rows
from escapia_ical.store import encode_body as _encode

log = logging.getLogger(__name__)

_BATCH = 500  # rows written per executemany at most
_BATCH_BYTES = 1 << 20  # ... and about this many bytes of bodies (chunks of feed records are 20 KB)
# Documents of more rows than this are not remembered between a read and a write (about
# 150 bytes a row; entries are kept in chunks of about 16, so it takes some 300,000 units).
MAX_KNOWN_ROWS = 20_000
BUSY_SECONDS = 30.0  # the longest wait for another process's write (a sync's is milliseconds)

# MIGRATIONS[n] brings a database of schema version n to n + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 0 -> 1: the first schema
        "CREATE TABLE documents (key TEXT NOT NULL, part TEXT NOT NULL, body TEXT NOT NULL,"
        " PRIMARY KEY (key, part)) WITHOUT ROWID",
    ),
    # 1 -> 2: split mappings are stored in chunks of entries (escapia_ical.store). Nothing to
    # change here: rows of single entries are still read, and each document is rewritten in
    # chunks by its next write. The version keeps an older escapia-ical, which would not
    # read the chunks, from opening the file.
    (),
]
SCHEMA_VERSION = len(MIGRATIONS)



class Corrupt(StateError):
    """The file is not an SQLite database, or a damaged one."""


class SqliteStore:
    """Documents in the SQLite database at ``path`` (created with ``mode`` if missing)."""

    def __init__(self, path: Path, mode: int = 0o600, *, readonly: bool = False, wal: bool = True):
        self.path = path
        self._wal = wal
        self.bytes_written = 0  # bodies written since opened, for the run's figures
        self._lock = threading.RLock()
        self._depth = 0
        self._empty = False  # read-only, and no schema yet: every document is absent
        # The fingerprints of the rows of each document as last read or written through this
        # connection, valid while no other connection commits (PRAGMA data_version): a write
        # then need not read the rows again to tell which changed.
        self._known: dict[str, dict[str, bytes]] = {}
        self._known_version: int | None = None
        self._db = self._connect(mode, readonly)

    # -- the interface (escapia_ical.store) -------------------------------------------

    def read(self, key: str) -> Any | None:
        if self._empty:
            return None
        with self._lock:  # rows decoded one at a time: 10,000 bodies are never all held twice
            seen: dict[str, bytes] | None = {}
            version = self._data_version()

            def remembered() -> Iterator[tuple[bytes, bytes]]:
                nonlocal seen
                for raw, body in self._rows(key):
                    if seen is not None:
                        try:
                            seen[raw.decode("utf-8")] = _fingerprint(body)
                        except ValueError:  # a garbled part: the next write reads the rows again
                            seen = None
                        if seen is not None and len(seen) > MAX_KNOWN_ROWS:
                            seen = None  # too big to remember: the next write reads the rows again
                    yield raw, body

            value = read_rows(remembered(), self.path, key)
            self._known_at(version)
            if seen is not None:  # (were another commit to land after `version`, the next write sees it)
                self._known[key] = seen
            return value

    def write(self, key: str, value: Any, split: Split = ()) -> int:
        # Streamed: each row is encoded, compared with the stored one by fingerprint and let go
        # (in batches), so that the rows of 10,000 feed records are never all held at once
        # next to the records themselves (that was the peak of a cold sync's memory).
        written = 0
        try:
            with self.transaction():
                stored, garbled = self._stored(key)
                batch: list[tuple[str, str, str]] = []
                pending = 0  # the bytes of the bodies in batch
                now: dict[str, bytes] | None = {}
                for part, body in flatten(value, split, _encode):
                    fingerprint = _fingerprint(body.encode("utf-8"))
                    if now is not None:
                        now[part] = fingerprint
                        if len(now) > MAX_KNOWN_ROWS:
                            now = None
                    if stored.pop(part, None) != fingerprint:
                        batch.append((key, part, body))  # new or changed (an unchanged row is not written)
                        written += len(body)
                        pending += len(body)
                        if len(batch) >= _BATCH or pending >= _BATCH_BYTES:
                            self._replace(batch)
                            pending = 0
                self._replace(batch)
                self._execute("DELETE FROM documents WHERE key = ? AND part = ?",
                              [(key, part) for part in stored], many=True)  # rows no longer there
                self._execute("DELETE FROM documents WHERE key = ? AND CAST(part AS BLOB) = ?", garbled,
                              many=True)
                if now is not None:
                    self._known[key] = now
                else:
                    self._known.pop(key, None)
        except BaseException as exc:
            # Some rows may be written (and committed by an outer transaction that goes on):
            # what is stored is no longer known.
            self._known.pop(key, None)
            if isinstance(exc, StateError):
                raise StateError(f"{exc} (writing {key})") from exc
            raise
        self.bytes_written += written
        return written

    def _stored(self, key: str) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
        """The fingerprints of the stored rows of ``key`` by part, and the parts that are not
        UTF-8; from memory if no other connection has committed since they were known. The
        caller holds the write transaction (no other commit can come in between)."""
        self._known_at(self._data_version())
        known = self._known.get(key)
        if known is not None:
            return dict(known), []
        stored, garbled = {}, []
        for raw, body in self._rows(key):
            try:
                stored[raw.decode("utf-8")] = _fingerprint(body)
            except ValueError:
                garbled.append((key, raw))
        return stored, garbled

    def _data_version(self) -> int:
        try:
            return self._db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state database {self.path}: {exc}") from exc

    def _known_at(self, version: int) -> None:
        """Forget what is known unless it was known at ``version`` (nothing committed since
        by another connection)."""
        if version != self._known_version:
            self._known.clear()
            self._known_version = version

    def _replace(self, batch: list[tuple[str, str, str]]) -> None:
        """Write the rows of ``batch`` and empty it."""
        self._execute("INSERT OR REPLACE INTO documents (key, part, body) VALUES (?, ?, ?)", batch, many=True)
        batch.clear()

    def _rows(self, key: str) -> Iterator[tuple[bytes, bytes]]:
        """The (part, body) rows of ``key`` as bytes (a row that is not UTF-8 is then one bad
        row, not a failed read or write). The caller holds the lock."""
        try:
            yield from self._db.execute("SELECT CAST(part AS BLOB), CAST(body AS BLOB) FROM documents "
                                        "WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state database {self.path}: {exc}") from exc

    def delete(self, key: str) -> None:
        with self.transaction():
            self._known.pop(key, None)
            self._execute("DELETE FROM documents WHERE key = ?", (key,))

    def keys(self, prefix: str = "") -> list[str]:
        if self._empty:
            return []
        with self._lock:
            found = self._query("SELECT DISTINCT key FROM documents WHERE substr(key, 1, ?) = ? ORDER BY key",
                                (len(prefix), prefix))
        return [key for (key,) in found]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._known.clear()  # what was written is undone
                    with contextlib.suppress(sqlite3.Error):
                        self._db.rollback()
                raise
            self._depth -= 1
            if outer:
                try:
                    self._execute("COMMIT")
                except StateError:  # never leave the connection inside the transaction
                    self._known.clear()
                    with contextlib.suppress(sqlite3.Error):
                        self._db.rollback()
                    raise

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- the file ---------------------------------------------------------------------

    def _connect(self, mode: int, readonly: bool) -> sqlite3.Connection:
        """Open (or create, with ``mode``) the database and bring its schema forward."""
        for suffix in ("", "-wal", "-shm", "-journal"):  # sqlite follows links: none is allowed here
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(f"{self.path}{suffix}").st_mode):
                    raise StateError(f"state database {self.path}{suffix} is a symbolic link; refusing it")
        if not readonly:
            with contextlib.suppress(FileExistsError):
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                try:
                    os.fchmod(fd, mode)  # whatever the umask: the monitoring group reads status.db
                finally:
                    os.close(fd)
        target = f"{Path(self.path).absolute().as_uri()}?mode=ro" if readonly else str(self.path)
        try:
            db = sqlite3.connect(target, uri=readonly, timeout=BUSY_SECONDS, isolation_level=None,
                                 check_same_thread=False)
            if not readonly:
                db.execute(f"PRAGMA journal_mode={'WAL' if self._wal else 'DELETE'}")
                db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            kind = Corrupt if "not a database" in str(exc) or "malformed" in str(exc) else StateError
            raise kind(f"cannot open state database {self.path}: {exc}") from exc
        if version > SCHEMA_VERSION:
            db.close()
            raise StateError(f"state database {self.path} has schema version {version}, written by a "
                             f"newer escapia-ical (this one knows {SCHEMA_VERSION}); run the newer version, "
                             "or move the file away to start afresh")
        if version < SCHEMA_VERSION:
            if readonly:
                self._empty = version == 0  # older, not empty: read as it is (a migration only adds)
            else:
                self._migrate(db, version)
        return db

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
            current = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.rollback()
            raise StateError(f"cannot bring state database {self.path} from schema {version} to "
                             f"{SCHEMA_VERSION}: {exc}") from exc
        if version:
            log.info("state database %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state database {self.path}: {exc}") from exc

    def _execute(self, sql: str, args: Any = (), *, many: bool = False) -> None:
        try:
            if many:
                self._db.executemany(sql, args)
            else:
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StateError(f"cannot write state database {self.path}: {exc}") from exc


def _fingerprint(body: bytes) -> bytes:
    """A row's body, told apart from any other with certainty for our purpose (16 bytes)."""
    return hashlib.blake2b(body, digest_size=16).digest()
