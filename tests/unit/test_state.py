"""State: corrupt documents are one warning and treated as absent; names read back from
them never address a file outside the account folder; nothing is written through a link;
the databases and the token files keep their modes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.errors import PublishError, StateError
from escapia_ical.feeds.names import feed_filename, is_feed_filename
from escapia_ical.state import AccountState, close_stores, read_json, read_state, write_json, write_state
from escapia_ical.store.sqlite import SqliteStore

GOOD = {"unit": "1", "digest": "d", "dtstamp": "2026-11-23T22:00:00+00:00", "events": 2,
        "ranges": "2026-12-01+3", "day": "2026-11-23"}


@pytest.mark.parametrize("unit_id", ["1020-101", "a.", "a..b", "../x", "/etc/passwd", ".hidden", "ü 9",
                                     "x" * 300, "", "a\0b", "..", "CON"])
def test_every_name_we_produce_is_a_feed_filename(unit_id):
    assert is_feed_filename(feed_filename(unit_id))
    assert is_feed_filename(feed_filename(unit_id, "secret-0123456789abcdef", "acct"))


@pytest.mark.parametrize("name", ["../victim.ics", "/etc/passwd", "/tmp/x.ics", "a/b.ics", ".hidden.ics",
                                  "..", ".", "x.txt", "x.ics\0", "x\0.ics", "", ".ics", "x.ics/",
                                  "ünit.ics", "x\n.ics", 5, None])
def test_what_is_not_a_feed_filename(name):
    assert not is_feed_filename(name)


def plant(db: Path, key: str, body: str | bytes) -> None:
    """Make ``body`` the only row of document ``key`` in the database ``db``, as a damaged
    or hand-edited database would hold it (bytes: stored as text that is not UTF-8)."""
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("DELETE FROM documents WHERE key = ?", (key,))
        con.execute("INSERT INTO documents (key, part, body) VALUES (?, '[]', CAST(? AS TEXT))", (key, body))


def test_feed_stamps_drop_bad_names_and_shapes_with_one_warning(tmp_path, caplog):
    state = AccountState(tmp_path, "acct")
    stored = {"1.ics": GOOD, "a..ics": GOOD, "x~0123456789abcdef.ics": {"unit": "x/y"},
              "../victim.ics": GOOD, "/etc/passwd": GOOD, ".hidden.ics": GOOD,
              "2.ics": [], "3.ics": {**GOOD, "unit": ["1"]}, "4.ics": {**GOOD, "events": "2"},
              "5.ics": {**GOOD, "events": True}, "6.ics": {**GOOD, "ranges": 5}}
    write_state(state.feeds_path, stored)
    with caplog.at_level(logging.WARNING):
        stamps = state.feed_stamps()
    assert stamps == {"1.ics": GOOD, "a..ics": GOOD, "x~0123456789abcdef.ics": {"unit": "x/y"}}
    [warning] = caplog.records
    message = warning.getMessage()
    assert f"{tmp_path / 'state.db'} (accounts/acct/feeds)" in message
    assert "'../victim.ics': not a feed file name" in message
    assert "and 5 more" in message




def test_ranges_written_the_older_way_are_read_in_the_compact_form(tmp_path):
    """State of an earlier version keeps "first/checkout" pairs: read, they are the compact
    text (written so at the next save); pairs that cannot be read are left as they are (the
    unit is then fetched: sync/runner.py)."""
    state = AccountState(tmp_path, "acct")
    write_state(state.feeds_path, {
        "1.ics": {**GOOD, "ranges": "2026-12-05/2026-12-07 2026-12-01/2026-12-04 2026-12-01/2026-12-02"},
        "2.ics": {**GOOD, "ranges": "2026-12-05/2026-12-03"}, "3.ics": {**GOOD, "ranges": ""}})
    stamps = state.feed_stamps()
    assert stamps["1.ics"]["ranges"] == "2026-12-01+1 0+3 4+2"
    assert stamps["2.ics"]["ranges"] == "2026-12-05/2026-12-03"
    assert stamps["3.ics"]["ranges"] == ""
    state.save_feed_stamps(stamps)
    assert read_state(state.feeds_path)["1.ics"]["ranges"] == "2026-12-01+1 0+3 4+2"


@pytest.mark.parametrize("content", [
    "[]", '"x"', "5", "null", '{"1.ics": {"un',
    b"\xff\xfe",
    "[" * 100_000,
])
def test_unusable_feeds_document_is_empty_with_one_warning(tmp_path, caplog, content):
    state = AccountState(tmp_path, "acct")
    state.save_feed_stamps({"1.ics": GOOD})
    plant(tmp_path / "state.db", "accounts/acct/feeds", content)
    with caplog.at_level(logging.WARNING):
        assert state.feed_stamps() == {}
    assert len(caplog.records) == (content != "null")
    assert all(str(tmp_path / "state.db") in r.getMessage() and "accounts/acct/feeds" in r.getMessage()
               for r in caplog.records)


def test_an_unreadable_row_of_a_split_document_drops_those_entries_alone(tmp_path, caplog):
    state = AccountState(tmp_path, "acct")
    stamps = {f"{n}.ics": GOOD for n in range(100)}
    state.save_feed_stamps(stamps)
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as con, con:
        # the last chunk of entries (store/__init__.py; the first holds the day they share)
        part, body = max(row for row in con.execute("SELECT part, body FROM documents WHERE key = ?",
                                                    ("accounts/acct/feeds",)) if row[0].startswith('[["'))
        con.execute("UPDATE documents SET body = '{\"un' WHERE key = ? AND part = ?", ("accounts/acct/feeds", part))
    lost = set(json.loads(body))
    assert lost < set(stamps) and len(lost) < 65
    with caplog.at_level(logging.WARNING):
        assert state.feed_stamps() == {name: entry for name, entry in stamps.items() if name not in lost}
    [warning] = caplog.records
    assert "1 unreadable row(s) ignored" in warning.getMessage()
    state.save_feed_stamps(stamps)  # the next sync rewrites it
    caplog.clear()
    assert state.feed_stamps() == stamps and not caplog.records


def test_read_json_of_deep_nesting_is_a_warning(tmp_path, caplog):
    (tmp_path / "x.json").write_text("[" * 100_000)
    with caplog.at_level(logging.WARNING):
        assert read_json(tmp_path / "x.json") is None
    assert "unreadable (RecursionError" in caplog.text


def test_database_modes_and_a_linked_state_dir(tmp_path):
    real = tmp_path / "real-state"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)  # the operator's state_dir may be a link
    state = AccountState(tmp_path / "state", "acct")
    state.save_feed_stamps({"1.ics": GOOD})
    write_state(tmp_path / "state" / "status.json", {"version": 1})
    assert read_state(real / "accounts" / "acct" / "feeds.json") == {"1.ics": GOOD}
    assert read_state(real / "status.json") == {"version": 1}
    modes = {name: stat.S_IMODE((real / name).stat().st_mode) for name in os.listdir(real)}
    # the journal files of state.db (WAL, shared memory) have its mode: they hold its data;
    # status.db keeps a rollback journal, gone once a write is committed
    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600, "status.db": 0o640}


def test_a_new_state_dir_is_made_0750_with_its_parents(tmp_path):
    state_dir = tmp_path / "var" / "lib" / "escapia"
    AccountState(state_dir, "acct").save_feed_stamps({"1.ics": GOOD})
    for folder in (tmp_path / "var", tmp_path / "var" / "lib", state_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert stat.S_IMODE((state_dir / "state.db").stat().st_mode) == 0o600


def test_write_json_token_modes_and_a_linked_state_dir(tmp_path):
    real = tmp_path / "real-state"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    state = AccountState(tmp_path / "state", "acct")
    write_json(state.token_path, {"token": "secret"})
    assert json.loads((real / "accounts" / "acct" / "token.json").read_text()) == {"token": "secret"}
    assert stat.S_IMODE((real / "accounts" / "acct" / "token.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((real / "accounts").stat().st_mode) == 0o700
    assert stat.S_IMODE((real / "accounts" / "acct").stat().st_mode) == 0o700
    assert os.listdir(real / "accounts" / "acct") == ["token.json"]


@pytest.mark.parametrize("linked", ["accounts", "accounts/acct"])
def test_write_json_refuses_a_linked_folder_below_state_dir(tmp_path, linked):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "token.json").write_text("precious")
    state_dir = tmp_path / "state"
    (state_dir / linked).parent.mkdir(parents=True)
    (state_dir / linked).symlink_to(victim if linked.endswith("acct") else tmp_path)
    if linked == "accounts":
        (tmp_path / "acct").symlink_to(victim)  # state/accounts/acct -> tmp/acct -> victim
    refusal = f"{state_dir / linked} is a symbolic link; refusing to write through it"
    with pytest.raises(PublishError, match=f"^{re.escape(refusal)}$"):
        write_json(AccountState(state_dir, "acct").token_path, {"token": "t"})
    assert (victim / "token.json").read_text() == "precious"
    assert os.listdir(victim) == ["token.json"]


@pytest.mark.parametrize("linked", ["state.db", "state.db-wal", "state.db-shm", "status.db"])
def test_a_linked_database_is_refused_and_its_target_untouched(tmp_path, linked):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / linked).symlink_to(victim)
    path = state_dir / ("status.json" if linked.startswith("status") else "accounts/acct/feeds.json")
    refusal = f"state database {state_dir / linked} is a symbolic link; refusing it"
    with pytest.raises(StateError, match=f"^{re.escape(refusal)}$"):
        write_state(path, {"1.ics": GOOD})
    if linked.endswith(".db"):
        with pytest.raises(StateError, match=f"^{re.escape(refusal)}$"):
            read_state(path)
    else:  # no database: a read opens nothing
        assert read_state(path) is None
    assert victim.read_text() == "precious"
    assert (state_dir / linked).is_symlink()


def test_a_write_that_fails_leaves_the_old_document_whole(tmp_path):
    """A crash in the middle of a write leaves the old state or the new one, never a mix:
    the rows of a document are written in one transaction."""
    store = SqliteStore(tmp_path / "state.db")
    old = {"1.ics": GOOD, "2.ics": GOOD}
    store.write("accounts/acct/feeds", old, ((),))
    with pytest.raises(RuntimeError), store.transaction():
        store.write("accounts/acct/feeds", {"1.ics": {**GOOD, "digest": "new"}, "3.ics": GOOD}, ((),))
        raise RuntimeError("power cut")
    store.close()
    again = SqliteStore(tmp_path / "state.db")
    assert again.read("accounts/acct/feeds") == old
    again.close()


def test_json_state_of_an_earlier_version_is_imported_once(tmp_path, caplog):
    folder = tmp_path / "accounts" / "acct"
    folder.mkdir(parents=True)
    (folder / "feeds.json").write_text(json.dumps({"1.ics": GOOD}))
    (folder / "changes.json").write_text('{"cursor": ')  # unreadable: a warning, and absent
    (tmp_path / "status.json").write_text(json.dumps({"version": 1, "accounts": {}}))
    assert AccountState(tmp_path, "acct").feed_stamps() == {"1.ics": GOOD}  # read as it is, not taken in
    assert not (tmp_path / "state.db").exists()
    with caplog.at_level(logging.WARNING):  # the first writes take the files in
        write_state(folder / "identity.json", {"identity": "x"})
        write_state(tmp_path / "channels.json", {"version": 1})
    assert AccountState(tmp_path, "acct").feed_stamps() == {"1.ics": GOOD}
    assert read_state(folder / "changes.json") is None
    assert read_state(tmp_path / "status.json") == {"version": 1, "accounts": {}}
    assert f"state file {folder / 'changes.json'} is unreadable" in caplog.text
    assert sorted(os.listdir(folder)) == ["changes.json.imported", "feeds.json.imported"]
    assert (tmp_path / "status.json.imported").exists() and not (tmp_path / "status.json").exists()
    close_stores()
    (folder / "feeds.json").write_text(json.dumps({"2.ics": GOOD}))  # once: not read again
    assert AccountState(tmp_path, "acct").feed_stamps() == {"1.ics": GOOD}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "pop"]), st.sampled_from(["a.ics", "b.ics", "c.ics"]),
                          st.sampled_from(["u1", "u2", None])), max_size=30))
def test_feed_stamps_index_names_by_unit_exactly_as_a_scan_would(operations):
    from escapia_ical.state import FeedStamps, names_of

    stamps = FeedStamps({"a.ics": {"unit": "u1"}})
    for op, name, unit in operations:
        if op == "set":
            stamps[name] = {"unit": unit} if unit else {"digest": "x"}
        elif op == "del" and name in stamps:
            del stamps[name]
        else:
            stamps.pop(name, None)
        for each in ("u1", "u2"):
            assert names_of(stamps, each) == names_of(dict(stamps), each)
