"""Leases: with the state in PostgreSQL, each account is synced by one host at a time, and
once per tick, whichever of the hosts running ``sync`` get there first.

A lease is a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its
own, held while the account is synced: it dies with its holder. A host killed mid-run loses
its connection, so the server frees its leases at once (a host cut off from the network
within ``KEEPALIVE_SECONDS``, by TCP keepalives), and another host takes the accounts at its
next tick. The table ``leases`` says who holds or last held each (host, pid, started,
finished): ``status`` shows it, and a host that gets an account another host finished
after its own run started skips it (the account was synced this tick). Hosts' clocks are
compared there: keep them in time (NTP).

The status document is read, merged and written under a lease of its own (waited for,
``STATUS_WAIT`` seconds), so that two hosts finishing together never overwrite each
other's accounts. With the state in SQLite none of this applies: the file locks of
sync/lock.py serve one host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import socket
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
def account_lease(state_dir: Path, account: str, run_started: dt.datetime) -> Iterator[None]:
    """Hold ``account``'s lease for the block (nothing without PostgreSQL state). Raise
    LockHeld (``holder``: a LeaseHolder) if another host holds it, or finished it after
    ``run_started``; StateError if the database cannot be reached."""
    with _lease(state_dir, f"account:{account}", wait=0, run_started=run_started):
        yield


@contextlib.contextmanager
def status_lease(state_dir: Path) -> Iterator[None]:
    """Hold the status's lease (waiting up to STATUS_WAIT s) for a read-merge-write."""
    with _lease(state_dir, "status", wait=STATUS_WAIT, run_started=None):
        yield


@contextlib.contextmanager
def _lease(state_dir: Path, name: str, wait: float, run_started: dt.datetime | None) -> Iterator[None]:
    remote = postgresql_of(state_dir)
    if remote is None:
        yield
        return
    import psycopg  # only PostgreSQL state gets here

    dsn, schema, where = remote
    key = int.from_bytes(hashlib.blake2b(f"{schema}\0{name}".encode(), digest_size=8).digest(), "big",
                         signed=True)
    table = psycopg.sql.Identifier(schema, "leases")
    try:
        db = psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="escapia-ical lease",
                             keepalives=1, keepalives_idle=KEEPALIVE_SECONDS // 3, keepalives_interval=5,
                             keepalives_count=3)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise StateError(f"cannot take the lease of {name.replace(':', ' ')} in {where}: {reason}") from None
    try:
        with db:
            db.execute("SET statement_timeout = '30s'")
            # The server notices a vanished host by its own keepalives too.
            db.execute(f"SET tcp_keepalives_idle = {KEEPALIVE_SECONDS // 3}")
            db.execute("SET tcp_keepalives_interval = 5")
            db.execute("SET tcp_keepalives_count = 3")
            _ensure_table(db, schema)
            _acquire(db, key, wait, lambda: _holder(db, table, name, done=False))
            if run_started is not None:
                last = psycopg.sql.SQL("SELECT host, pid, finished FROM {} WHERE name = %s").format(table)
                row = db.execute(last, (name,)).fetchone()
                another = row is not None and (row[0], row[1]) != (HOST, os.getpid())
                if another and row[2] is not None and row[2] >= run_started:
                    holder = LeaseHolder(row[0], row[1], row[2], done=True)
                    what = name.split(":", 1)[-1]
                    raise LockHeld(f"{what}: synced this tick by {holder.describe()}", holder)
            db.execute(psycopg.sql.SQL("INSERT INTO {} (name, host, pid, started, finished) VALUES "
                                       "(%s, %s, %s, now(), NULL) ON CONFLICT (name) DO UPDATE SET "
                                       "host = EXCLUDED.host, pid = EXCLUDED.pid, started = now(), "
                                       "finished = NULL").format(table), (name, HOST, os.getpid()))
            yield
            with contextlib.suppress(psycopg.Error):  # the lease still ends with the connection
                db.execute(psycopg.sql.SQL("UPDATE {} SET finished = now() WHERE name = %s").format(table),
                           (name,))
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise StateError(f"lease of {name.replace(':', ' ')} in {where}: {reason}") from None


def _ensure_table(db, schema: str) -> None:  # type: ignore[no-untyped-def]
    """Create the leases table if missing, under the migrations' lock: two hosts' CREATE ...
    IF NOT EXISTS at the same moment can otherwise collide in PostgreSQL's catalog."""
    from psycopg import sql

    from escapia_ical.store.postgresql import MIGRATION_LOCK  # (imports psycopg)

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


def _holder(db, table, name: str, done: bool) -> LeaseHolder:  # type: ignore[no-untyped-def]
    import psycopg

    row = db.execute(psycopg.sql.SQL("SELECT host, pid, started FROM {} WHERE name = %s").format(table),
                     (name,)).fetchone()
    return LeaseHolder(*row, done=done) if row else LeaseHolder("?", 0, None, done=done)
