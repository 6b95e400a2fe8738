"""Edge cases of the SQLite state found by a review (issue 13): the store, the status
compaction and the bench's measurement, where the main tests do not go."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from escapia_ical import state as state_module
from escapia_ical.errors import StateError
from escapia_ical.state import STATUS_DB, close_stores, read_state, state_bytes_written, write_state
from escapia_ical.status import load_status, record_run, save_status
from escapia_ical.store import row_path
from escapia_ical.store import sqlite as backend
from escapia_ical.sync.context import SyncReport

STATUS = {"version": 1, "accounts": {"a": {"units": {"u": {"events": 3}}}}}


# -- the monitoring group opens status.db read-only ------------------------------------------

@pytest.mark.parametrize("folder", ["state#2", "state?2", "100%25"])
def test_the_monitoring_group_reads_the_status_whatever_state_dirs_name(tmp_path, monkeypatch, folder):
    """A user who may not write status.db opens it as an SQLite URI ("file:<path>?mode=ro"):
    a state_dir whose path holds "#", "?" or "%" must still be the one read (and the open
    must stay read-only: nothing may be created)."""
    state = tmp_path / folder
    save_status(state, STATUS)
    close_stores()
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(state_module.os, "access", lambda path, mode, **kw: False)  # the monitoring user
    assert load_status(state)["accounts"]["a"]["units"]["u"]["events"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made beside state_dir


# -- a commit that fails -----------------------------------------------------------------------

def test_a_commit_that_fails_does_not_leave_the_transaction_open(tmp_path, monkeypatch):
    """status.db keeps a rollback journal: its COMMIT waits for readers (a `status`, a report, an
    operator's sqlite3 shell, a backup) and fails after BUSY_SECONDS. The write fails; the next
    ones must not (and other readers must not stay locked out until the process ends)."""
    monkeypatch.setattr(backend, "BUSY_SECONDS", 0.2)
    path = tmp_path / STATUS_DB
    store = backend.SqliteStore(path, 0o640, wal=False)
    store.write("status", {"v": 1})
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM documents").fetchall()  # holds its SHARED lock a while
    with pytest.raises(StateError):
        store.write("status", {"v": 2})
    reader.execute("COMMIT")
    reader.close()
    other = sqlite3.connect(path, timeout=0.2)
    try:
        assert other.execute("SELECT COUNT(*) FROM documents").fetchone() == (1,)  # readable again
    finally:
        other.close()
    store.write("status", {"v": 3})  # the next write works
    assert store.read("status") == {"v": 3}
    store.close()


# -- text the JSON files could hold ------------------------------------------------------------

def test_text_with_a_lone_surrogate_is_stored_as_the_json_files_stored_it(tmp_path):
    """json.dumps (ensure_ascii) wrote "\\ud800" into the JSON state files; HSAPI answers are
    JSON and may carry one (a unit id; feeds/names.py and tests/unit/test_fuzz.py handle them)."""
    state = tmp_path / "state"
    feeds = {"odd~0123456789abcdef.ics": {"unit": "odd\ud800", "digest": "d"}}
    write_state(state / "accounts" / "a" / "feeds.json", feeds)
    assert read_state(state / "accounts" / "a" / "feeds.json") == feeds
    status = {"version": 1, "accounts": {"a": {"units": {"odd\ud800": {"events": 1}}}}}
    save_status(state, status)
    assert "odd\ud800" in load_status(state)["accounts"]["a"]["units"]


# -- rows whose part is damaged ----------------------------------------------------------------

@pytest.mark.parametrize("part", ["5", "null", "{}", "[1]"])
def test_a_row_whose_part_is_not_a_path_is_left_out(tmp_path, part):
    """README: a row that cannot be decoded is left out of the document with a warning; the
    readers check the shape of what they get. A part that is JSON but not a list of names is
    such a row."""
    store = backend.SqliteStore(tmp_path / "t.db")
    store.write("doc", {"a.ics": {"unit": "a"}}, ((),))
    with sqlite3.connect(tmp_path / "t.db") as con:
        con.execute("INSERT INTO documents (key, part, body) VALUES ('doc', ?, '{}')", (part,))
    con.close()
    assert store.read("doc") == {"a.ics": {"unit": "a"}}
    store.close()


# -- what a steady tick writes -----------------------------------------------------------------

def test_a_steady_tick_after_a_day_of_runs_writes_a_few_kilobytes(tmp_path):
    """README, State: "a steady tick at 10,000 units writes a few kilobytes". The status keeps
    the runs of the last 24 hours (288 at one tick per 5 minutes) in chunks of rows (a tick
    rewrites the chunk its run joins, and the one a run left); the bench's steady tick runs
    with two runs in that list, this test with a day's."""
    state = tmp_path / "state"
    start = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    for tick in range(289):
        finished = start + dt.timedelta(minutes=5 * tick)
        before = state_bytes_written()
        record_run(state, SyncReport(), finished - dt.timedelta(seconds=3), finished, 0)
        written = state_bytes_written() - before
    assert written < 8 * 1024, f"{written} bytes of status for a tick that did nothing"


# -- the bench's clock -------------------------------------------------------------------------

def test_the_bench_clock_ahead_is_the_clock_the_sandbox_answers_with(tmp_path):
    """scripts/bench.py runs the CLI with its clock moved up to a day ahead (CLOCK_AHEAD) while
    the sandbox (another process) keeps the real one: an HSAPI token the sandbox issues for an
    hour then looks expired to the CLI, so every "steady" tick of the 10,000-unit row asks for a
    token again (and rewrites token.json): 3 requests, not the steady tick's 2."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import bench

    code = bench.CLOCK_AHEAD.split("from escapia_ical.cli import main")[0] + (
        "from escapia_ical.sources.hsapi_tokens import TOKEN_MARGIN\n"
        "import time\n"
        "issued = datetime.datetime.fromtimestamp(time.time() + 3600, datetime.UTC)\n"  # the sandbox's token
        "print(datetime.datetime.now(datetime.UTC) + TOKEN_MARGIN < issued)\n")
    import subprocess
    ahead = 6 * 3600  # the bench's "before" clock at 18:00: midnight - 600 s, minus now
    found = subprocess.run([sys.executable, "-c", code, str(ahead)], capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == "True", found.stderr or "a fresh token looks expired to the CLI"


# -- modes ---------------------------------------------------------------------------------------

def test_status_db_is_0640_whatever_the_umask(tmp_path):
    """status.json was written 0640 whatever the umask (feeds/publish.py write_at: fchmod), so
    the monitoring group could read it from a cron or a shell with umask 077; status.db is
    created by os.open(..., 0o640), which the umask cuts down to 0600."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        save_status(tmp_path / "state", STATUS)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "state" / STATUS_DB).st_mode) == 0o640


# -- error messages --------------------------------------------------------------------------------

def test_a_write_that_fails_names_the_database_and_the_document(tmp_path, monkeypatch):
    """Warnings name the database and the document (state.describe); the StateError of a write
    that fails (here: another process holds the database longer than BUSY_SECONDS) names only
    the database, so the account's error line does not say what was not recorded."""
    monkeypatch.setattr(backend, "BUSY_SECONDS", 0.2)
    state = tmp_path / "state"
    write_state(state / "accounts" / "a" / "feeds.json", {})
    other = sqlite3.connect(state / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StateError) as failed:
            write_state(state / "accounts" / "a" / "feeds.json", {"x.ics": {"unit": "x"}})
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = str(failed.value)
    assert "\n" not in message and str(state / "state.db") in message
    assert "accounts/a/feeds" in message, message


@pytest.mark.parametrize("path", [[], [""], ["a"], ["a", "b"], ['a"b', "c"], ["\u00e9", "x"], ["a,b", "]"],
                                  ['","'], ["\ud800"], ["\\"], ["a b"], ["a", '"']])
def test_a_part_reads_back_as_the_path_it_encodes(path):
    """The quick reading of a row's part (no escape in it) agrees with JSON's."""
    part = json.dumps(path, separators=(",", ":")).encode("utf-8")
    assert row_path(part) == path


@pytest.mark.parametrize("part", [b'["a" ,"b"]', b'["a"]x', b'["a","b"', b"[1]", b'{"a":1}', b'["\xff"]',
                                  b'["a"x"b"]', b'["a","b"]', b'[]', b'["\\u00e9"]'])
def test_a_part_that_is_not_a_path_of_strings_is_refused_or_read_as_json_reads_it(part):
    try:
        expected = json.loads(part)
    except ValueError:
        expected = None
    if not (isinstance(expected, list) and all(isinstance(n, str) for n in expected)):
        expected = None
    assert row_path(part) == expected
