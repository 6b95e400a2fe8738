"""The store contract (escapia_ical.store): the same tests for every backend, SQLite and a
real PostgreSQL server (tests/unit/pg_server.py). A document reads back as written whatever
its split; a write stores only what changed; transactions; undecodable rows; schemas."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escapia_ical.errors import StateError
from escapia_ical.store import chunks, encode_body, encode_chunk_part, flatten
from escapia_ical.store import sqlite as sqlite_backend
from escapia_ical.store.postgresql import PostgresStore
from escapia_ical.store.sqlite import SqliteStore

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=12)
SPLITS = [(), ((),), ((), ("a",)), ((), ("*",)), ((), ("*", "*"))]
_schemas = itertools.count()


class Backend:
    """Opens stores of one backend; ``tamper`` runs SQL on the rows behind the interface."""

    def __init__(self, name: str, tmp_path, dsn: str | None):
        self.name, self.tmp_path, self.dsn = name, tmp_path, dsn
        self.schema = f"t{next(_schemas)}"  # PostgreSQL: a schema of its own per test
        self.opened: list = []

    def open(self, store: str = "state"):
        if self.name == "sqlite":
            found = SqliteStore(self.tmp_path / f"{store}.db")
        else:
            found = PostgresStore(self.dsn, store, self.schema)
        self.opened.append(found)
        return found

    def tamper(self, sql: str) -> None:
        if self.name == "sqlite":
            with sqlite3.connect(self.tmp_path / "state.db") as con:
                con.execute(sql)
        else:
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as db:
                db.execute(f"SET search_path TO {self.schema}")
                db.execute(sql)

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None
    found = Backend(request.param, tmp_path, dsn)
    yield found
    found.close()


@pytest.fixture
def store(backend):
    return backend.open()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON, split=st.sampled_from(SPLITS), later=JSON)
def test_a_document_reads_back_as_written_whatever_its_split(request, tmp_path_factory, kind, value, split, later):
    backend = Backend(kind, tmp_path_factory.mktemp("s"),
                      request.getfixturevalue("postgres_dsn") if kind == "postgresql" else None)
    try:
        store = backend.open()
        store.write("doc", value, split)
        assert store.read("doc") == value
        store.write("doc", later, split)  # rows of the first value that the second lacks are gone
        assert store.read("doc") == later
    finally:
        backend.close()


def test_only_the_rows_that_changed_are_written(store):
    feeds = {f"unit-{i}.ics": {"digest": "d" * 64, "ranges": "2026-01-01/2026-01-05"} for i in range(1000)}
    first = store.write("accounts/a/feeds", feeds, ((),))
    assert first > 60_000
    assert store.write("accounts/a/feeds", feeds, ((),)) == 0  # a steady tick: nothing
    feeds["unit-7.ics"] = {**feeds["unit-7.ics"], "digest": "e" * 64}
    one = store.write("accounts/a/feeds", feeds, ((),))
    [chunk] = [chunk for _, chunk in chunks(feeds) if "unit-7.ics" in chunk]
    assert one == len(encode_body(chunk)) < 8_000  # its chunk (16 records on average, at most 64)
    before = dict(flatten(feeds, ((),), encode_body))
    del feeds["unit-8.ics"]
    after = dict(flatten(feeds, ((),), encode_body))
    gone = sum(len(body) for part, body in after.items() if before.get(part) != body)
    assert gone < 8_000  # a deletion rewrites its chunk (or deletes its row if it was alone)
    assert store.write("accounts/a/feeds", feeds, ((),)) == gone
    assert set(store.read("accounts/a/feeds")) == set(feeds)
    assert store.bytes_written == first + one + gone


def test_an_unsplit_document_is_rewritten_whole(store):
    store.write("doc", {"a": list(range(100)), "b": 1})
    assert store.write("doc", {"a": list(range(100)), "b": 2}) > 200


def test_keys_delete_and_a_missing_document(store):
    store.write("accounts/a/feeds", {"x": 1}, ((),))
    store.write("accounts/b/feeds", {})
    store.write("accounts/B/feeds", {})
    store.write("status", 1)
    assert store.keys("accounts/") == ["accounts/B/feeds", "accounts/a/feeds", "accounts/b/feeds"]  # bytewise
    store.delete("accounts/a/feeds")
    assert store.read("accounts/a/feeds") is None and store.read("nothing") is None
    assert store.read("accounts/b/feeds") == {}  # an empty split document is kept


def test_the_two_stores_are_apart(backend):
    state, status = backend.open("state"), backend.open("status")
    state.write("doc", 1)
    status.write("doc", 2)
    assert (state.read("doc"), status.read("doc"), state.keys(), status.keys()) == (1, 2, ["doc"], ["doc"])


def test_a_transaction_commits_together_or_not_at_all(store):
    store.write("a", 1)
    with pytest.raises(RuntimeError), store.transaction():
        store.write("a", 2)
        store.write("b", 3)
        raise RuntimeError
    assert store.read("a") == 1 and store.read("b") is None
    with store.transaction():
        store.write("a", 4)
        with store.transaction():
            store.write("b", 5)
    assert (store.read("a"), store.read("b")) == (4, 5)


def test_another_reader_sees_a_transaction_only_once_committed(backend):
    writer, reader = backend.open(), backend.open()
    writer.write("a", 1)
    with writer.transaction():
        writer.write("a", 2)
        writer.write("b", 2)
        assert (reader.read("a"), reader.read("b")) == (1, None)
    assert (reader.read("a"), reader.read("b")) == (2, 2)


def test_threads_sharing_a_store_each_write_their_own_documents(store):
    def account(n: int) -> None:
        for tick in range(20):
            with store.transaction():
                store.write(f"accounts/{n}/feeds", {f"u{i}": tick for i in range(30)}, ((),))
    threads = [threading.Thread(target=account, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [store.read(f"accounts/{n}/feeds") for n in range(6)] == [{f"u{i}": 19 for i in range(30)}] * 6


def test_an_undecodable_row_is_left_out_with_a_warning(backend, store, caplog):
    split = ((), ("more",))  # a row per top-level field
    store.write("doc", {"good": 1, "bad": 2, "more": {}}, split)
    backend.tamper("UPDATE documents SET body = '{nope' WHERE part = '[\"bad\"]'")
    with caplog.at_level(logging.WARNING):
        assert store.read("doc") == {"good": 1, "more": {}}
    assert "(doc): 1 unreadable row(s) ignored" in caplog.text
    store.write("doc", {"good": 1, "bad": 3, "more": {}}, split)  # rewritten by the next write
    assert store.read("doc") == {"good": 1, "bad": 3, "more": {}}


def test_an_undecodable_chunk_loses_its_entries_alone(backend, store, caplog):
    feeds = {f"u{i}.ics": i for i in range(200)}
    store.write("doc", feeds, ((),))
    first, chunk = next(iter(chunks(feeds)))
    backend.tamper(f"UPDATE documents SET body = '[1]' WHERE part = '{encode_chunk_part((), first)}'")  # noqa: S608
    with caplog.at_level(logging.WARNING):
        assert store.read("doc") == {name: n for name, n in feeds.items() if name not in chunk}
    assert "(doc): 1 unreadable row(s) ignored" in caplog.text
    assert store.write("doc", feeds, ((),)) == len(encode_body(chunk))  # rewritten by the next write
    assert store.read("doc") == feeds


def test_a_newer_schema_is_refused_and_left_alone(backend):
    backend.open().close()
    newer = sqlite_backend.SCHEMA_VERSION + 1
    backend.tamper(f"PRAGMA user_version = {newer}" if backend.name == "sqlite"
                   else f"UPDATE schema_version SET version = {newer}")  # noqa: S608 - a number
    with pytest.raises(StateError, match=rf"schema version {newer}, written by a newer escapia-ical "
                                         rf"\(this one knows {newer - 1}\)"):
        backend.open()


def test_postgresql_errors_name_no_password(postgres_dsn):
    wrong = postgres_dsn.replace("@127.0.0.1", "x@127.0.0.1")  # a wrong password
    with pytest.raises(StateError) as caught:
        PostgresStore(wrong, "state", where="PostgreSQL (test)")
    assert "password authentication failed" in str(caught.value)
    assert "pg-test-secret" not in str(caught.value)
    with pytest.raises(StateError, match="not a plain SQL name"):
        PostgresStore(postgres_dsn, "state", 'x"; DROP TABLE documents; --')


def test_postgresql_comes_back_after_a_lost_connection(postgres_dsn):
    import psycopg

    store = PostgresStore(postgres_dsn, "state", f"t{next(_schemas)}")
    store.write("doc", 1)
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'escapia-ical'")
    with pytest.raises(StateError):  # the statement that finds the connection gone fails, clearly
        store.read("doc")
    assert store.read("doc") == 1  # the next one opens it again
    store.close()


def test_postgresql_a_role_that_may_only_read_reads_the_state(postgres_dsn):
    import psycopg

    schema = f"t{next(_schemas)}"
    writer = PostgresStore(postgres_dsn, "status", schema)
    writer.write("status", {"accounts": {"a": {"ok": True}}}, ((), ("accounts",)))
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw'; "
                      "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO monitor")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO monitor")
    reader_dsn = postgres_dsn.replace("escapia:pg-test-secret-7Qx@", "monitor:monitor-pw@")
    reader = PostgresStore(reader_dsn, "status", schema)  # no DDL for a current schema
    assert reader.read("status") == {"accounts": {"a": {"ok": True}}}
    with pytest.raises(StateError, match="permission denied"):
        reader.write("status", {})
    reader.close()
    # Schema 1 (a row per entry) before any writer brought it forward: read as it is.
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"UPDATE {schema}.schema_version SET version = 1")  # noqa: S608 - a test's own name
        admin.execute(f"INSERT INTO {schema}.documents VALUES ('status', 'status', '[\"accounts\",\"b\"]', "  # noqa: S608
                      "'{\"ok\":false}')")
    reader = PostgresStore(reader_dsn, "status", schema)
    assert reader.read("status") == {"accounts": {"a": {"ok": True}, "b": {"ok": False}}}
    reader.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        assert admin.execute(f"SELECT version FROM {schema}.schema_version").fetchall() == [(1,)]  # noqa: S608
    writer.close()
    writer = PostgresStore(postgres_dsn, "status", schema)  # a writer brings it forward
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        assert admin.execute(f"SELECT version FROM {schema}.schema_version").fetchall() == [(2,)]  # noqa: S608
    writer.close()
