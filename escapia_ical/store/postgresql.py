"""The PostgreSQL store (psycopg 3): one state shared by several hosts.

The same rows as the SQLite store (:mod:`.sqlite`), in one table of the schema the config
names (``state: {backend: postgresql, dsn: ..., schema: escapia_ical}``)::

    documents (store, key, part, body)   store: "state" or "status" (SQLite's two files)

``part`` is the JSON list of mapping keys a row sits at, ``body`` its JSON (ASCII). The
schema is versioned (table ``schema_version``); ``MIGRATIONS`` brings an older one forward
when a store is opened, under a transaction-scoped advisory lock so that hosts starting
together migrate once; a schema written by a newer version of the program is refused.

A write compares each row with the stored one by the MD5 PostgreSQL computes of it, so
that only the digests cross the network, and sends only rows that are new or changed.
Every statement and every wait for a lock is bounded (``STATEMENT_SECONDS``), as is the
connection (``CONNECT_SECONDS``); a lost connection is opened again once at the next
statement outside a transaction. Messages never carry the DSN (its password).

One connection per store and process, shared by the accounts synced in parallel (threads)
under a lock, as with SQLite.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from escapia_ical.errors import StateError
from escapia_ical.store import Split, encode_body, flatten, read_rows

log = logging.getLogger(__name__)

CONNECT_SECONDS = 10
# A server gone silent (a dead host, a cut network) fails the connection within about 30 s
# instead of a read waiting for ever: TCP keepalives, and a limit on unacknowledged sends.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
              "tcp_user_timeout": 30_000}
STATEMENT_SECONDS = 30  # a statement, or a wait for another host's lock (a sync's writes take ms)
_BATCH = 500  # rows sent at once at most
_BATCH_BYTES = 1 << 20  # ... and about this many bytes of bodies (chunks of feed records are 20 KB)
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
MIGRATION_LOCK = 0x6573_6361_7069_61  # pg_advisory_xact_lock's key for migrations ("escapia")

# MIGRATIONS[n] brings a schema of version n to n + 1 ({t}: the documents table, {s}: the schema).
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 0 -> 1: the first schema, SQLite's table with the store's name as a column
        "CREATE TABLE {t} (store TEXT NOT NULL, key TEXT NOT NULL, part TEXT NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (store, key, part))",
    ),
    # 1 -> 2: split mappings are stored in chunks of entries (escapia_ical.store): rewritten
    # so by each document's next write; the version keeps older hosts from reading them.
    (),
]
SCHEMA_VERSION = len(MIGRATIONS)


def valid_schema_name(name: str) -> bool:
    """Whether ``name`` may name the schema (a plain lower-case SQL identifier)."""
    return bool(_NAME.fullmatch(name))


class PostgresStore:
    """The documents of one store ("state" or "status") in the PostgreSQL database at ``dsn``."""

    def __init__(self, dsn: str, store: str, schema: str = "escapia_ical", *, where: str = "PostgreSQL"):
        if not valid_schema_name(schema):
            raise StateError(f"state.schema {schema!r} is not a plain SQL name (a-z, 0-9, _)")
        self.path = where  # how messages name it (never the DSN: it may hold a password)
        self.bytes_written = 0
        self._dsn, self._store, self._schema = dsn, store, schema
        self._lock = threading.RLock()
        self._depth = 0
        self._db = self._connect()

    # -- the interface (escapia_ical.store) -------------------------------------------

    def read(self, key: str) -> Any | None:
        with self._lock:
            found = self._query(self._sql("SELECT part, body FROM {t} WHERE store = %s AND key = %s"),
                                (self._store, key))
        return read_rows(((part.encode("utf-8"), body) for part, body in found), self.path, key)

    def write(self, key: str, value: Any, split: Split = ()) -> int:
        written = 0
        with self.transaction():
            digests = self._sql("SELECT part, md5(body) FROM {t} WHERE store = %s AND key = %s")
            stored = dict(self._query(digests, (self._store, key)))
            batch: list[tuple[str, str, str, str]] = []
            pending = 0  # the bytes of the bodies in batch
            for part, body in flatten(value, split, encode_body):
                if stored.pop(part, None) != _md5(body):
                    batch.append((self._store, key, part, body))  # new or changed
                    written += len(body)
                    pending += len(body)
                    if len(batch) >= _BATCH or pending >= _BATCH_BYTES:
                        self._upsert(batch)
                        pending = 0
            self._upsert(batch)
            if stored:  # rows no longer there
                self._execute(self._sql("DELETE FROM {t} WHERE store = %s AND key = %s AND part = ANY(%s)"),
                              (self._store, key, list(stored)))
        self.bytes_written += written
        return written

    def delete(self, key: str) -> None:
        with self.transaction():
            self._execute(self._sql("DELETE FROM {t} WHERE store = %s AND key = %s"), (self._store, key))

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            found = self._query(self._sql('SELECT key FROM {t} WHERE store = %s AND left(key, %s) = %s'
                                          ' GROUP BY key ORDER BY key COLLATE "C"'),
                                (self._store, len(prefix), prefix))
        return [key for (key,) in found]

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        """The interface's transaction; ``lock`` (outermost only): also hold the database's
        advisory lock of that name until it ends, so that one host at a time runs it."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._reconnect_if_lost()
            self._depth = 1
            try:
                with self._errors("write"), self._db.transaction():
                    if lock is not None:
                        key = lock_key(f"{self._schema}\0{self._store}\0{lock}")
                        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                    yield
            finally:
                self._depth = 0

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._db.close()

    # -- the connection ---------------------------------------------------------------

    def _sql(self, text: str, table: str = "documents") -> sql.Composed:
        """``text`` with ``{t}`` as the quoted table in our schema (``{s}``: the schema)."""
        return sql.SQL(text).format(t=sql.Identifier(self._schema, table), s=sql.Identifier(self._schema))

    def _connect(self) -> psycopg.Connection:
        with self._errors("open"):
            db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_SECONDS,
                                 application_name="escapia-ical", **KEEPALIVES)
            db.execute(f"SET statement_timeout = '{STATEMENT_SECONDS}s'")
            db.execute(f"SET lock_timeout = '{STATEMENT_SECONDS}s'")
            db.execute("SET idle_in_transaction_session_timeout = '300s'")
            self._migrate(db)
        return db

    def _migrate(self, db: psycopg.Connection) -> None:
        """Bring the schema forward if it is older; refuse a newer one. A current schema is
        only read (no DDL, no lock): a role that may only read (``status`` for monitoring)
        opens it too, and an older one whose tables are current (the migrations left are
        empty: schema 1 is read as it is) when the role may not bring it forward."""
        version = self._version(db)
        if version == SCHEMA_VERSION:
            return
        if version and not any(MIGRATIONS[version:]):
            try:
                self._bring_forward(db)
            except psycopg.errors.InsufficientPrivilege:  # (the transaction was rolled back)
                log.debug("state %s: schema %d read as it is (this role may not bring it forward)",
                          self.path, version)
            return
        self._bring_forward(db)

    def _bring_forward(self, db: psycopg.Connection) -> None:
        versions = "schema_version"
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
            db.execute(self._sql("CREATE TABLE IF NOT EXISTS {t} (version INTEGER NOT NULL)", versions))
            version = self._version(db)  # another host may have done it meanwhile
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(self._sql(statement))
            if version < SCHEMA_VERSION:
                db.execute(self._sql("DELETE FROM {t}", versions))
                db.execute(self._sql("INSERT INTO {t} VALUES (%s)", versions), (SCHEMA_VERSION,))
                if version:
                    log.info("state %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)

    def _version(self, db: psycopg.Connection) -> int:
        """The schema's version (0: none yet). Raise StateError for a newer one."""
        table = db.execute("SELECT to_regclass(%s)", (f'"{self._schema}".schema_version',)).fetchone()[0]
        if table is None:
            return 0
        version = db.execute(self._sql("SELECT max(version) FROM {t}", "schema_version")).fetchone()[0] or 0
        if version > SCHEMA_VERSION:
            raise StateError(f"state in {self.path} has schema version {version}, written by a newer "
                             f"escapia-ical (this one knows {SCHEMA_VERSION}); run the newer version")
        return version

    def _reconnect_if_lost(self) -> None:
        if self._db.closed or self._db.broken:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = self._connect()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(f"cannot {doing} state in {self.path}: {error_text(exc, self._dsn)}") from None

    def _query(self, statement: sql.Composed, args: tuple) -> list[tuple]:
        if not self._depth:
            self._reconnect_if_lost()
        with self._errors("read"):
            return self._db.execute(statement, args).fetchall()

    def _execute(self, statement: sql.Composed, args: tuple) -> None:
        with self._errors("write"):
            self._db.execute(statement, args)

    def _upsert(self, batch: list[tuple[str, str, str, str]]) -> None:
        if batch:
            with self._errors("write"), self._db.cursor() as cursor:
                upsert = self._sql("INSERT INTO {t} (store, key, part, body) VALUES (%s, %s, %s, %s)"
                                   " ON CONFLICT (store, key, part) DO UPDATE SET body = EXCLUDED.body")
                cursor.executemany(upsert, batch)
            batch.clear()


def lock_key(name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def dsn_fields(dsn: str | None) -> dict[str, str]:
    """The fields of a DSN (URL or key=value form), as libpq reads them; {} if it cannot
    (the connection then says what is wrong)."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn or "").items() if v is not None}
    except Exception:  # noqa: BLE001 - libpq's parser, whatever it raises
        return {}


def describe_dsn(dsn: str | None, schema: str) -> str:
    """How messages name the database: host, port and database, never the password."""
    fields = dsn_fields(dsn)
    host = fields.get("host") or fields.get("hostaddr") or "localhost"
    return f"PostgreSQL {host}:{fields.get('port') or 5432}/{fields.get('dbname') or '?'} (schema {schema})"


def error_text(exc: BaseException, dsn: str) -> str:
    """A psycopg error as one line, without the DSN or its password (libpq does not print
    them; should a version ever)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in (dsn, dsn_fields(dsn).get("password", "")):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def _md5(body: str) -> str:
    """What PostgreSQL's md5(body) gives for the row (a change check, not security)."""
    return hashlib.md5(body.encode("ascii"), usedforsecurity=False).hexdigest()
