"""Leases: with the state in PostgreSQL, each account is synced by one host at a time, and
once per tick, whichever of the hosts running ``sync`` get there first.

A lease is a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its
own, held while the account is synced (or pruned, rotated, accepted: those wait for it):
it dies with its holder. A host killed mid-run loses its connection, so the server frees
its leases at once (a host cut off from the network within ``KEEPALIVE_SECONDS``, by TCP
keepalives), and another host takes the accounts at its next tick. Before a sync records
an account's state, it checks that its lease is still held (:func:`confirm_lease`): a
lease lost mid-run (the connection dropped) records nothing, and the next tick syncs the
account again. The table ``leases`` says which sync holds or last held each account (host,
pid, started, finished); a sync that gets an account another process's sync *took* after
its own run started skips it (the account was synced this tick). Both times are the
database's: this host's clock is set against it once per run.

The status document is read, merged and written under a lease of its own (waited for,
``STATUS_WAIT`` seconds), so that two hosts finishing together never overwrite each
other's accounts. With the state in SQLite none of this applies: the file locks of
sync/lock.py serve one host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from escapia_ical.errors import LockHeld, StateError
from escapia_ical.store.documents import postgresql_of

KEEPALIVE_SECONDS = 30
STATUS_WAIT = 30.0
HOST = socket.gethostname()


@dataclasses.dataclass(frozen=True)
class LeaseHolder:
    """Who holds an account's lease, or finished it this tick (``done``)."""

    host: str
    pid: int
    since: dt.datetime | None
    done: bool = False
    stuck: bool = False  # a lease dies with its holder: never stuck

    def describe(self) -> str:
        when = f"{self.since.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if self.since else "?"
        if self.done:
            return f"host {self.host} (pid {self.pid}), which synced it this tick (at {when})"
        return f"host {self.host} (pid {self.pid}) since {when}"


@contextlib.contextmanager
def account_lease(state_dir: Path, account: str, *, run_started: dt.datetime | None = None,
                  wait: float = 0.0) -> Iterator[None]:
    """Hold ``account``'s lease for the block (nothing without PostgreSQL state), waiting up
    to ``wait`` seconds for it. With ``run_started`` (a sync): skip (raise LockHeld) if
    another process's sync took the account since this run started, and record this one
    in the ``leases`` table. Raise LockHeld (``holder``: a LeaseHolder) if it stays held,
    StateError if the database cannot be reached."""
    sync = run_started is not None
    with _lease(state_dir, f"account:{account}", wait=wait, run_started=run_started, record=sync):
        yield


@contextlib.contextmanager
def status_lease(state_dir: Path) -> Iterator[None]:
    """Hold the status's lease (waiting up to STATUS_WAIT s) for a read-merge-write."""
    with _lease(state_dir, "status", wait=STATUS_WAIT, run_started=None, record=False):
        yield


def confirm_lease(state_dir: Path, account: str) -> None:
    """Raise StateError unless this thread still holds ``account``'s lease (nothing without
    PostgreSQL state): called before an account's state is recorded."""
    held = getattr(_held, "leases", {}).get((state_dir, f"account:{account}"))
    if held is None:
        return
    db, where = held
    try:
        db.execute("SELECT 1").fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure: the lease may be gone
        from escapia_ical.store.postgresql import error_text

        dsn = (postgresql_of(state_dir) or ("",))[0]
        raise StateError(f"lost the lease of account {account} in {where} ({error_text(exc, dsn)}); "
                         "its state is not recorded: the next tick syncs it again") from None


_held = threading.local()  # (state_dir, name) -> (connection, where) of the leases this thread holds
_offset: dt.timedelta | None = None  # the database's clock minus this host's


@contextlib.contextmanager
def _lease(state_dir: Path, name: str, wait: float, run_started: dt.datetime | None,
           record: bool) -> Iterator[None]:
    remote = postgresql_of(state_dir)
    if remote is None:
        yield
        return
    import psycopg  # only PostgreSQL state gets here

    from escapia_ical.store.postgresql import KEEPALIVES, error_text, lock_key

    dsn, schema, where = remote
    key = lock_key(f"{schema}\0{name}")
    table = psycopg.sql.Identifier(schema, "leases")
    what = name.replace(":", " ")
    try:
        db = psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="escapia-ical lease",
                             **KEEPALIVES)
    except psycopg.Error as exc:
        raise StateError(f"cannot take the lease of {what} in {where}: {error_text(exc, dsn)}") from None
    held = _held.__dict__.setdefault("leases", {})
    try:
        with db:
            db.execute("SET statement_timeout = '30s'")
            # The server notices a vanished host by its own keepalives too.
            db.execute(f"SET tcp_keepalives_idle = {KEEPALIVE_SECONDS // 3}")
            db.execute("SET tcp_keepalives_interval = 5")
            db.execute("SET tcp_keepalives_count = 3")
            _ensure_table(db, schema)
            _acquire(db, key, wait, lambda: _holder(db, table, name))
            if run_started is not None:
                _skip_if_synced_this_tick(db, table, name, run_started)
            if record:
                db.execute(psycopg.sql.SQL("INSERT INTO {} (name, host, pid, started, finished) VALUES "
                                           "(%s, %s, %s, now(), NULL) ON CONFLICT (name) DO UPDATE SET "
                                           "host = EXCLUDED.host, pid = EXCLUDED.pid, started = now(), "
                                           "finished = NULL").format(table), (name, HOST, os.getpid()))
            held[(state_dir, name)] = (db, where)
            try:
                yield
            finally:
                held.pop((state_dir, name), None)
            if record:
                done = psycopg.sql.SQL("UPDATE {} SET finished = now() WHERE name = %s").format(table)
                with contextlib.suppress(psycopg.Error):  # the lease still ends with the connection
                    db.execute(done, (name,))
    except psycopg.Error as exc:
        raise StateError(f"lease of {what} in {where}: {error_text(exc, dsn)}") from None


def _skip_if_synced_this_tick(db, table, name: str, run_started: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    """Raise LockHeld if another process's sync took ``name`` after this run started (both
    on the database's clock)."""
    import psycopg

    global _offset
    if _offset is None:
        before = dt.datetime.now(dt.UTC)
        now = db.execute("SELECT now()").fetchone()[0]
        _offset = now - (before + (dt.datetime.now(dt.UTC) - before) / 2)
    row = db.execute(psycopg.sql.SQL("SELECT host, pid, started FROM {} WHERE name = %s").format(table),
                     (name,)).fetchone()
    if row is not None and (row[0], row[1]) != (HOST, os.getpid()) and row[2] >= run_started + _offset:
        holder = LeaseHolder(row[0], row[1], row[2], done=True)
        raise LockHeld(f"{name.split(':', 1)[-1]}: synced this tick by {holder.describe()}", holder)


def _ensure_table(db, schema: str) -> None:  # type: ignore[no-untyped-def]
    """Create the leases table if missing, under the migrations' lock (two hosts' CREATE ...
    IF NOT EXISTS at the same moment can collide in PostgreSQL's catalog). An existing one
    is only looked up: no DDL on every lease."""
    from psycopg import sql

    from escapia_ical.store.postgresql import MIGRATION_LOCK  # (imports psycopg)

    if db.execute("SELECT to_regclass(%s)", (f'"{schema}".leases',)).fetchone()[0] is not None:
        return
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        db.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, host TEXT NOT NULL, "
                           "pid INTEGER NOT NULL, started TIMESTAMPTZ NOT NULL, finished TIMESTAMPTZ)")
                   .format(sql.Identifier(schema, "leases")))


def _acquire(db, key: int, wait: float, holder) -> None:  # type: ignore[no-untyped-def]
    """Take the advisory lock ``key``, trying every 0.2 s for ``wait`` seconds; else raise
    LockHeld naming ``holder()``."""
    deadline = time.monotonic() + wait
    while not db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            found = holder()
            raise LockHeld(f"held by {found.describe()}", found)
        time.sleep(0.2)


def _holder(db, table, name: str) -> LeaseHolder:  # type: ignore[no-untyped-def]
    """The last sync that held ``name`` (a prune or rotation holding it is not recorded)."""
    import psycopg

    row = db.execute(psycopg.sql.SQL("SELECT host, pid, started FROM {} WHERE name = %s").format(table),
                     (name,)).fetchone()
    return LeaseHolder(*row) if row else LeaseHolder("?", 0, None)
