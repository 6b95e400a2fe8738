"""The state store (escapia_ical.store): documents read back as written, whatever the
split; writes only what changed; schema versions; the JSON state of earlier versions."""

from __future__ import annotations

import grp
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import escapia_ical
from escapia_ical.errors import StateError
from escapia_ical.state import STATE_DB, STATUS_DB, close_stores, read_state, state_bytes_written, write_state
from escapia_ical.status import load_status, save_status
from escapia_ical.store import chunks, encode_body, encode_chunk_part, encode_part
from escapia_ical.store import sqlite as sqlite_store
from escapia_ical.store.sqlite import SCHEMA_VERSION, SqliteStore


def test_an_undecodable_row_is_left_out_with_a_warning(tmp_path, caplog):
    store = SqliteStore(tmp_path / "t.db")
    store.write("doc", {"good": 1, "bad": 2, "more": {}}, ((), ("more",)))  # a row per top-level field
    with sqlite3.connect(tmp_path / "t.db") as con:
        con.execute("UPDATE documents SET body = '{nope' WHERE part = '[\"bad\"]'")
    with caplog.at_level(logging.WARNING):
        assert store.read("doc") == {"good": 1, "more": {}}
    assert "t.db (doc): 1 unreadable row(s) ignored" in caplog.text
    store.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "t.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match=rf"schema version {SCHEMA_VERSION + 1}, written by a newer escapia-ical "
                                         rf"\(this one knows {SCHEMA_VERSION}\)"):
        SqliteStore(path)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_an_older_schema_is_brought_forward(tmp_path, monkeypatch):
    from escapia_ical.store import sqlite as backend
    path = tmp_path / "t.db"
    SqliteStore(path).write("doc", {"kept": True})
    added = ("ALTER TABLE documents ADD COLUMN note TEXT",)
    monkeypatch.setattr(backend, "MIGRATIONS", [*backend.MIGRATIONS, added])
    monkeypatch.setattr(backend, "SCHEMA_VERSION", len(backend.MIGRATIONS))
    store = backend.SqliteStore(path)
    assert store.read("doc") == {"kept": True}
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert "note" in [row[1] for row in con.execute("PRAGMA table_info(documents)")]
    store.close()


def test_a_database_reached_through_a_link_is_refused(tmp_path):
    (tmp_path / "elsewhere.db").write_bytes(b"")
    (tmp_path / "t.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(StateError, match="is a symbolic link"):
        SqliteStore(tmp_path / "t.db")


def test_the_databases_are_private_and_status_is_shared(tmp_path):
    state = tmp_path / "state"
    write_state(state / "accounts" / "a" / "feeds.json", {})
    save_status(state, {"version": 1, "accounts": {}})
    assert stat.S_IMODE(os.stat(state / STATE_DB).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state / STATUS_DB).st_mode) == 0o640
    with sqlite3.connect(state / STATE_DB) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with sqlite3.connect(state / STATUS_DB) as con:  # readers who may not write: see below
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with sqlite3.connect(state / STATUS_DB) as con:  # no secret feed name in the shared file
        assert con.execute("SELECT COUNT(*) FROM documents WHERE key LIKE 'accounts/%'").fetchone()[0] == 0


def test_unit_times_equal_to_the_accounts_are_not_rewritten_each_tick(tmp_path):
    state = tmp_path / "state"

    def tick(when: str, failing: str | None = None) -> int:
        status = load_status(state)
        entry = status["accounts"].setdefault("a", {"units": {}})
        entry.update(last_attempt=when, last_success=when)
        for i in range(500):
            unit = entry["units"].setdefault(f"u{i}", {})
            unit["last_attempt"] = when
            if f"u{i}" != failing:
                unit["last_success"] = when
        before = state_bytes_written()
        save_status(state, status)
        return state_bytes_written() - before

    assert tick("2026-11-30T10:00:00+00:00") > 10_000
    assert tick("2026-11-30T10:05:00+00:00") < 500  # the account's entry, not 500 units
    # and the chunk of the one unit that differs (about 16 units' entries: store/__init__.py)
    assert tick("2026-11-30T10:10:00+00:00", failing="u3") < 2_000
    units = load_status(state)["accounts"]["a"]["units"]
    assert units["u3"] == {"last_attempt": "2026-11-30T10:10:00+00:00", "last_success": "2026-11-30T10:05:00+00:00"}
    assert units["u4"]["last_success"] == "2026-11-30T10:10:00+00:00"


def test_json_state_of_an_earlier_version_is_imported_once(tmp_path, caplog):
    state = tmp_path / "state"
    (state / "accounts" / "a").mkdir(parents=True)
    feeds = {"u1.ics": {"unit": "u1", "digest": "d"}}
    (state / "accounts" / "a" / "feeds.json").write_text(json.dumps(feeds))
    (state / "accounts" / "a" / "changes.json").write_text(json.dumps({"cursor": 7, "fetched": {"u1": "t"}}))
    (state / "status.json").write_text(json.dumps({"version": 1, "accounts": {"a": {"units": {}}}}))
    (state / "notices.json").write_text("{broken")
    assert read_state(state / "accounts" / "a" / "feeds.json") == feeds  # read as it is: a read writes nothing
    assert "a" in load_status(state)["accounts"]
    assert sorted(p.name for p in state.iterdir()) == ["accounts", "notices.json", "status.json"]
    with caplog.at_level(logging.WARNING):
        write_state(state / "accounts" / "a" / "identity.json", {"identity": "x"})  # the first write
    assert read_state(state / "accounts" / "a" / "feeds.json") == feeds
    assert read_state(state / "accounts" / "a" / "changes.json") == {"cursor": 7, "fetched": {"u1": "t"}}
    assert read_state(state / "notices.json") is None  # unreadable: absent, as before
    assert (state / "accounts" / "a" / "feeds.json.imported").exists()
    assert not (state / "accounts" / "a" / "feeds.json").exists()
    assert "3 JSON state file(s) of an earlier version taken into" in caplog.text
    assert (state / "status.json").exists()  # status.db is made by its own first write
    save_status(state, load_status(state))
    assert not (state / "status.json").exists() and "a" in load_status(state)["accounts"]
    (state / "accounts" / "a" / "feeds.json").write_text(json.dumps({"other.ics": {}}))  # not read again
    close_stores()
    assert read_state(state / "accounts" / "a" / "feeds.json") == feeds


def test_two_processes_import_once(tmp_path):
    """The import is decided inside its transaction: a second process finds it done."""
    state = tmp_path / "state"
    (state / "accounts" / "a").mkdir(parents=True)
    (state / "accounts" / "a" / "changes.json").write_text(json.dumps({"cursor": 1}))
    first = SqliteStore(state / STATE_DB)
    second = SqliteStore(state / STATE_DB)
    from escapia_ical.store.documents import _import_json
    _import_json(first, state, shared=False)
    first.write("accounts/a/changes", {"cursor": 2})  # the first process goes on syncing
    (state / "accounts" / "a" / "changes.json.imported").rename(state / "accounts" / "a" / "changes.json")
    _import_json(second, state, shared=False)
    assert second.read("accounts/a/changes") == {"cursor": 2}
    first.close(), second.close()


def test_files_a_kill_left_after_the_import_are_renamed_and_files_written_since_are_not(tmp_path, caplog,
                                                                                        monkeypatch):
    """A kill between the import's commit and its renames leaves the files it read: the next
    open renames those still as they were read, and names any written since (by an earlier
    version run after the upgrade) in a warning, unread and where it is."""
    state = tmp_path / "state"
    folder = state / "accounts" / "a"
    folder.mkdir(parents=True)
    feeds = {"u1.ics": {"unit": "u1", "digest": "d"}}
    (folder / "changes.json").write_text(json.dumps({"cursor": 1}))
    (folder / "feeds.json").write_text(json.dumps(feeds))
    from escapia_ical.store.documents import _import_json
    store = SqliteStore(state / STATE_DB)
    _import_json(store, state, shared=False)
    store.close()
    for name in ("changes.json", "feeds.json"):  # as the kill left them
        (folder / f"{name}.imported").rename(folder / name)
    newer = folder / ".feeds.json.tmp"  # an earlier version writes its file again, whole
    newer.write_text(json.dumps({"u1.ics": {"unit": "u1", "digest": "e"}}))
    newer.replace(folder / "feeds.json")
    close_stores()
    import socket  # (a container made again has another name: the files beside state.db are still its)
    monkeypatch.setattr(socket, "gethostname", lambda: "another-name")
    with caplog.at_level(logging.WARNING):
        assert read_state(folder / "changes.json") == {"cursor": 1}
    assert sorted(os.listdir(folder)) == ["changes.json.imported", "feeds.json"]
    assert "1 JSON state file(s) of an earlier version taken into" in caplog.text
    assert f"1 JSON state file(s) of an earlier version (e.g. {folder / 'feeds.json'}) are not read" in caplog.text
    assert read_state(folder / "feeds.json") == feeds  # the database's, as imported
    close_stores()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root (to become another user)")
def test_the_monitoring_group_reads_the_status_while_no_sync_runs():
    """status.db is read by a user who may not write it or its folder (README, Monitoring)."""
    root = Path(tempfile.mkdtemp(prefix="monitoring-"))
    try:
        root.chmod(0o755)
        state = root / "state"
        save_status(state, {"version": 1, "accounts": {"a": {"units": {"u": {"events": 3}}}}})
        close_stores()  # no writer has it open: no -wal or -shm file
        group = grp.getgrnam("nogroup").gr_gid
        for path in (state, *state.iterdir()):
            os.chown(path, 0, group)
        state.chmod(0o2750)
        # The reader runs the product's code from a copy it may read (this checkout and its
        # virtualenv may sit in a folder only root enters), on the base interpreter.
        package = root / "pkg" / "escapia_ical"
        shutil.copytree(Path(escapia_ical.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
        for folder, _, files in os.walk(root / "pkg"):
            os.chmod(folder, 0o755)  # noqa: S103 - the other user must read the copy
            for name in files:
                os.chmod(Path(folder) / name, 0o644)
        code = "from pathlib import Path; from escapia_ical.store.documents import read_state; " \
               f"print(read_state(Path({str(state / 'status.json')!r}))['accounts']['a']['units']['u']['events'])"
        read = subprocess.run(["setpriv", "--reuid=nobody", f"--regid={group}", "--clear-groups",
                               os.path.realpath(sys.executable), "-I", "-c",
                               f"import sys; sys.path.insert(0, {str(root / 'pkg')!r}); {code}"],
                              capture_output=True, text=True, timeout=60)
        assert (read.returncode, read.stdout.strip()) == (0, "3"), read.stderr
        assert sorted(p.name for p in state.iterdir()) == ["status.db"]  # the reader left nothing
    finally:
        shutil.rmtree(root)


def test_the_day_every_feed_record_moves_to_is_written_once(tmp_path):
    """The daily roll moves each record's day: stored once, it costs a row, not 10,000."""
    path = tmp_path / "state" / "accounts" / "a" / "feeds.json"
    feeds = {f"u{i}.ics": {"unit": f"u{i}", "day": "2026-11-30", "digest": "d" * 64} for i in range(1000)}
    feeds["odd.ics"] = {"unit": "odd", "day": "2026-11-29"}
    feeds["none.ics"] = {"unit": "none"}
    write_state(path, feeds)
    assert read_state(path) == feeds
    for entry in feeds.values():
        if entry.get("day") == "2026-11-30":
            entry["day"] = "2026-12-01"
    before = state_bytes_written()
    write_state(path, feeds)
    assert state_bytes_written() - before < 1_000  # the chunk holding the shared day (113 KB in all)
    assert read_state(path) == feeds


SPLIT = ((), ("feeds",))


def _statements(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    return seen


def _chunk_of(mapping: dict, name: str) -> tuple[str, dict]:
    """The (first name, entries) of the chunk holding ``name``."""
    return next((first, chunk) for first, chunk in chunks(mapping) if name in chunk)


def test_a_write_after_a_read_does_not_read_the_rows_again(tmp_path):
    """The fingerprints of what was read stand in for the stored rows: a tick reads every
    feed record once, and its write sends only the chunk that changed."""
    store = SqliteStore(tmp_path / "t.db")
    store.write("doc", {"feeds": {f"u{i}.ics": {"day": "2026-11-30", "n": i} for i in range(100)}}, SPLIT)
    store.close()
    store = SqliteStore(tmp_path / "t.db")
    doc = store.read("doc")
    doc["feeds"]["u7.ics"]["day"] = "2026-12-01"
    first, chunk = _chunk_of(doc["feeds"], "u7.ics")
    assert 1 < len(chunk) < len(doc["feeds"])
    statements = _statements(store)
    assert store.write("doc", doc, SPLIT) == len(encode_body(chunk))
    assert not [s for s in statements if s.startswith("SELECT")], statements
    assert [s for s in statements if s.startswith("INSERT")] == [
        f"""INSERT OR REPLACE INTO documents (key, part, body) VALUES ('doc', '{encode_chunk_part(("feeds",), first)}', """  # noqa: S608
        f"""'{encode_body(chunk)}')"""]
    assert '"u7.ics":{"day":"2026-12-01","n":7}' in encode_body(chunk)
    assert SqliteStore(tmp_path / "t.db").read("doc") == doc


def test_a_row_another_connection_changed_since_the_read_is_written_again(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    store.write("doc", {"feeds": {"a.ics": 1, "b.ics": 2}}, SPLIT)
    doc = store.read("doc")
    with sqlite3.connect(tmp_path / "t.db") as other:  # e.g. `accept` in another process
        other.execute("""UPDATE documents SET body = '{"a.ics":5}' WHERE part LIKE '["feeds",[%'""")
    # every chunk: what was read is no longer what is stored
    assert store.write("doc", doc, SPLIT) == sum(len(encode_body(c)) for _, c in chunks(doc["feeds"]))
    assert SqliteStore(tmp_path / "t.db").read("doc") == {"feeds": {"a.ics": 1, "b.ics": 2}}


def test_a_write_rolled_back_is_not_taken_for_stored(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    store.write("doc", {"feeds": {"a.ics": 1}}, SPLIT)
    with pytest.raises(RuntimeError), store.transaction():
        store.write("doc", {"feeds": {"a.ics": 2}}, SPLIT)
        raise RuntimeError("the publish failed")
    assert store.read("doc") == {"feeds": {"a.ics": 1}}
    assert store.write("doc", {"feeds": {"a.ics": 2}}, SPLIT) == len('{"a.ics":2}')
    assert SqliteStore(tmp_path / "t.db").read("doc") == {"feeds": {"a.ics": 2}}
    store.delete("doc")
    assert store.write("doc", {"feeds": {"a.ics": 2}}, SPLIT) == len("{}") * 2 + len('{"a.ics":2}')
    assert SqliteStore(tmp_path / "t.db").read("doc") == {"feeds": {"a.ics": 2}}


@given(st.lists(st.one_of(st.text(), st.sampled_from(['", "', '","', "\\", "\x7f", "\u2028", "x.ics"])), max_size=4))
def test_a_part_is_the_json_list_of_its_path(path):
    """The shortcut for plain names writes the bytes json would (parts are compared as text)."""
    assert encode_part(tuple(path)) == json.dumps(path, separators=(",", ":"))


@pytest.mark.parametrize("rows, size", [(5, 1 << 20), (500, 1)])
def test_a_write_that_fails_half_way_is_not_taken_for_stored(tmp_path, monkeypatch, rows, size):
    """Rows of a failed write that an outer transaction still commits: the next write
    compares with the database again, not with what was known before."""
    monkeypatch.setattr(sqlite_store, "_BATCH", rows)  # rows are sent 5 at a time,
    monkeypatch.setattr(sqlite_store, "_BATCH_BYTES", size)  # or each at once (its bytes reach the bound)
    batch = 1 if size == 1 else rows
    store = SqliteStore(tmp_path / "t.db")
    old = {"feeds": {f"u{i:03d}.ics": 0 for i in range(600)}}
    store.write("doc", old, SPLIT)
    new = {"feeds": {f"u{i:03d}.ics": 1 if i < 550 else object() for i in range(600)}}  # 550: not JSON
    parts = [chunk for _, chunk in chunks(old["feeds"])]  # (the same names, the same chunks in `new`)
    failing = next(n for n, chunk in enumerate(parts) if "u550.ics" in chunk)
    sent = parts[:failing - failing % batch]  # the whole batches before the failing chunk
    assert sum(map(len, sent)) > 100
    with store.transaction(), pytest.raises(TypeError):
        store.write("doc", new, SPLIT)
    assert sum(SqliteStore(tmp_path / "t.db").read("doc")["feeds"].values()) == sum(map(len, sent))
    assert store.write("doc", old, SPLIT) == sum(len(encode_body(c)) for c in sent)  # those rows put back
    assert SqliteStore(tmp_path / "t.db").read("doc") == old


def test_a_document_too_big_to_remember_is_read_again_to_write(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "MAX_KNOWN_ROWS", 3)
    store = SqliteStore(tmp_path / "t.db")
    doc = {"feeds": {f"u{i}.ics": i for i in range(100)}}
    store.write("doc", doc, SPLIT)
    assert "doc" not in store._known
    assert store.read("doc") == doc and "doc" not in store._known
    doc["feeds"]["u7.ics"] = -7
    statements = _statements(store)
    assert store.write("doc", doc, SPLIT) == len(encode_body(_chunk_of(doc["feeds"], "u7.ics")[1]))
    assert [s for s in statements if s.startswith("SELECT")]  # compared with the rows themselves
    assert SqliteStore(tmp_path / "t.db").read("doc") == doc


def test_writing_feed_records_leaves_the_callers_records_as_they_were(tmp_path, monkeypatch):
    """The shared day is put into the records in place for the write (no copy of 50,000
    records), and taken out again after it, also when the write fails."""
    path = tmp_path / "state" / "accounts" / "a" / "feeds.json"
    feeds = {f"u{i}.ics": {"unit": f"u{i}", "day": "2026-11-30", "events": i} for i in range(50)}
    feeds["s1.ics"] = feeds["s2.ics"] = {"unit": "s", "day": "2026-11-30"}  # one record, two names
    feeds["odd.ics"] = {"unit": "odd", "day": "2026-11-29"}
    feeds["none.ics"] = {"unit": "none"}
    before = json.loads(json.dumps(feeds))
    write_state(path, feeds)
    assert feeds == before and read_state(path) == before
    seen = []

    def failing(self, key, value, split=()):
        seen.append(value["u1.ics"]["day"])
        raise StateError("disk full")

    monkeypatch.setattr(sqlite_store.SqliteStore, "write", failing)
    with pytest.raises(StateError, match="disk full"):
        write_state(path, feeds)
    assert seen == ["="] and feeds == before
