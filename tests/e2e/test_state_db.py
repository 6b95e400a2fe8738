"""The state database under the real CLI: kill -9 between publishing a feed and recording
it, kill -9 inside a state transaction, the JSON state of an earlier version taken in
without a fetch (and killed inside and after its import), and readers while a sync is
inside a transaction.

The kills are exact: the CLI runs under a wrapper that patches the store to SIGKILL its own
process (or pause it) at the chosen point (nothing in the product knows about it)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import Deployment
from feeds import read_nights

from escapia_ical.state import STATE_DB, STATUS_DB, read_state
from escapia_ical.status import load_status

TODAY = dt.date.today()
FEEDS = "accounts/sandbox/feeds"

# Runs the CLI; at the first write of KEY (after that write's first statement when INSIDE),
# the process stops: with STOP "kill" it kills itself with SIGKILL (no handler, no cleanup,
# no commit); else STOP is a file it writes "in" to, then waits (inside the transaction, its
# locks held) until the file says "go".
WRAPPER = """
import os, signal, sys, time
from pathlib import Path
from escapia_ical.store import sqlite as backend
key, inside, how = sys.argv[1], sys.argv[2] == "inside", sys.argv[3]
write, execute = backend.SqliteStore.write, backend.SqliteStore._execute
def stop():
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    marker = Path(how)
    marker.write_text("in")
    end = time.monotonic() + 60
    while marker.read_text() != "go" and time.monotonic() < end:
        time.sleep(0.02)
armed = []
def stopping_write(self, k, value, split=()):
    if k == key and not armed:
        if not inside:
            stop()
        armed.append(True)
    return write(self, k, value, split)
def stopping_execute(self, sql, args=(), *, many=False):
    execute(self, sql, args, many=many)
    if armed == [True] and sql.startswith(("DELETE", "INSERT")) and args:
        armed.append(False)
        stop()
backend.SqliteStore.write, backend.SqliteStore._execute = stopping_write, stopping_execute
from escapia_ical.cli import main
sys.argv = ["escapia-ical", *sys.argv[4:]]
sys.exit(main())
"""


def killed_run(deployment: Deployment, key: str, where: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, key, where, "kill", "sync", "--config",
                           str(deployment.config), *args], capture_output=True, text=True, timeout=60,
                          env=deployment.env(), cwd=deployment.root)


def book_two(deployment: Deployment) -> list[str]:
    units = deployment.sandbox.unit_ids()[:2]
    for i, unit in enumerate(units):
        start = TODAY + dt.timedelta(days=40 + i)
        deployment.sandbox.add_reservation(unit, start, start + dt.timedelta(days=3))
    return units


def settled(deployment: Deployment) -> None:
    """A sync heals everything, and the one after it rewrites nothing: the records match the files."""
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    for unit in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit)) == deployment.truth(unit)
    before = {p: p.stat().st_mtime_ns for p in deployment.output.rglob("*.ics")}
    again = deployment.run("sync")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in deployment.output.rglob("*.ics")} == before
    assert "unreadable" not in result.stderr + again.stderr


def test_kill_9_after_publishing_before_recording_converges(deployment):
    assert deployment.run("sync").returncode == 0
    recorded = read_state(deployment.state / "accounts" / "sandbox" / "feeds.json")
    units = book_two(deployment)
    result = killed_run(deployment, FEEDS, "before")
    assert result.returncode == -signal.SIGKILL, result.stderr
    for unit in units:  # published, and not recorded
        assert read_nights(deployment.feed(unit)) == deployment.truth(unit)
    assert read_state(deployment.state / "accounts" / "sandbox" / "feeds.json") == recorded
    settled(deployment)
    assert read_state(deployment.state / "accounts" / "sandbox" / "feeds.json") != recorded


def test_kill_9_inside_a_state_transaction_keeps_the_old_state(deployment):
    assert deployment.run("sync").returncode == 0
    path = deployment.state / "accounts" / "sandbox" / "feeds.json"
    recorded = read_state(path)
    book_two(deployment)
    result = killed_run(deployment, FEEDS, "inside")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (deployment.state / f"{STATE_DB}-wal").exists()  # the half-written transaction is in it
    with sqlite3.connect(deployment.state / STATE_DB) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert read_state(path) == recorded  # all of the old records, none of the new
    settled(deployment)


def test_kill_9_while_recording_the_status_keeps_the_last_status(deployment):
    assert deployment.run("sync").returncode == 0
    before = load_status(deployment.state)
    result = killed_run(deployment, "status", "inside")
    assert result.returncode == -signal.SIGKILL
    assert load_status(deployment.state) == before
    assert deployment.run("status").returncode == 0
    settled(deployment)  # two runs, both recorded (not told by their times: one second may hold all)
    assert len(load_status(deployment.state)["runs"]) == len(before["runs"]) + 2


def export_json(state: Path) -> None:
    """Write the state as an earlier version kept it (one JSON file per document), and
    remove the databases: what an upgrade finds."""
    for db in (STATE_DB, STATUS_DB):
        with sqlite3.connect(state / db) as con:
            keys = [k for (k,) in con.execute("SELECT DISTINCT key FROM documents") if not k.startswith("store/")]
        for key in keys:
            document = load_status(state) if key == "status" else read_state(state / f"{key}.json")
            (state / f"{key}.json").write_text(json.dumps(document), encoding="utf-8")
    from escapia_ical.state import close_stores
    close_stores()
    for db in (STATE_DB, STATUS_DB):
        for suffix in ("", "-wal", "-shm"):
            (state / f"{db}{suffix}").unlink(missing_ok=True)


def taken_in_without_a_fetch(deployment: Deployment, files: dict[Path, bytes]) -> str:
    """The next sync takes the JSON state in: no unit fetched, no feed rewritten, every JSON
    file renamed; the sync after it says nothing of it. Return the first sync's stderr."""
    sandbox = deployment.sandbox
    sandbox.reset_request_log()
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    assert "JSON state file(s) of an earlier version taken into" in result.stderr
    assert "are not read" not in result.stderr
    assert Counter(r["op"] for r in sandbox.requests) == {"GetReservationChanges": 1, "SearchWorkOrders": 1}
    assert {p: p.read_bytes() for p in deployment.output.rglob("*.ics")} == files  # nothing rewritten
    assert (deployment.state / "accounts" / "sandbox" / "changes.json.imported").exists()
    assert {p.name for p in deployment.state.rglob("*.json")} <= {"token.json"}
    assert load_status(deployment.state)["accounts"]["sandbox"]["last_error"] is None
    again = deployment.run("sync")
    assert again.returncode == 0 and "taken into" not in again.stderr and "are not read" not in again.stderr
    return result.stderr


def synced_then_exported(deployment: Deployment) -> dict[Path, bytes]:
    """Two syncs, then the state as an earlier version kept it; return the feeds' bytes."""
    assert deployment.run("sync").returncode == 0
    assert deployment.run("sync").returncode == 0
    files = {p: p.read_bytes() for p in deployment.output.rglob("*.ics")}
    export_json(deployment.state)
    assert (deployment.state / "accounts" / "sandbox" / "changes.json").exists()
    return files


def json_files(state: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in state.rglob("*.json*") if p.name != "token.json"}


def imported_mark(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM documents WHERE key = 'store/imported'").fetchone()[0]


def test_json_state_of_an_earlier_version_is_taken_in_without_a_fetch(deployment):
    files = synced_then_exported(deployment)
    taken_in_without_a_fetch(deployment, files)


def test_kill_9_inside_the_json_import_takes_it_in_whole_at_the_next_run(deployment):
    files = synced_then_exported(deployment)
    before = json_files(deployment.state)
    result = killed_run(deployment, FEEDS, "inside")  # the import writes feeds after identity
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert json_files(deployment.state) == before  # none renamed
    with sqlite3.connect(deployment.state / STATE_DB) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert imported_mark(deployment.state / STATE_DB) == 0  # nothing of the import was kept
    taken_in_without_a_fetch(deployment, files)


# Runs the CLI; after the first JSON state file is renamed *.json.imported (the import is
# committed), the process kills itself with SIGKILL: the other files are left as they were.
RENAME_WRAPPER = """
import os, pathlib, signal, sys
rename = pathlib.Path.rename
def killing_rename(self, target):
    done = rename(self, target)
    if str(target).endswith(".json.imported"):
        os.kill(os.getpid(), signal.SIGKILL)
    return done
pathlib.Path.rename = killing_rename
from escapia_ical.cli import main
sys.argv = ["escapia-ical", *sys.argv[1:]]
sys.exit(main())
"""


def test_kill_9_between_the_json_imports_commit_and_its_renames_converges(deployment):
    """The files the import read, still as read, are renamed at the next run (with the
    import's message, not the warning for files an earlier version wrote since)."""
    files = synced_then_exported(deployment)
    result = subprocess.run([sys.executable, "-c", RENAME_WRAPPER, "sync", "--config", str(deployment.config)],
                            capture_output=True, text=True, timeout=60, env=deployment.env(), cwd=deployment.root)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert imported_mark(deployment.state / STATE_DB) == 1  # committed
    assert len(list(deployment.state.rglob("*.json.imported"))) == 1
    assert (deployment.state / "accounts" / "sandbox" / "changes.json").exists()  # left by the kill
    stderr = taken_in_without_a_fetch(deployment, files)
    assert stderr.count("taken into") == 2  # state.db's files, then status.db's
def test_an_accounts_records_commit_together(deployment):
    """Feed records, held losses and the change-feed cursor of a run are one transaction:
    killed while the cursor is written, none of the run's records is kept."""
    assert deployment.run("sync").returncode == 0
    feeds = deployment.state / "accounts" / "sandbox" / "feeds.json"
    changes = deployment.state / "accounts" / "sandbox" / "changes.json"
    before = read_state(feeds), read_state(changes)
    book_two(deployment)
    result = killed_run(deployment, "accounts/sandbox/changes", "inside")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (read_state(feeds), read_state(changes)) == before
    settled(deployment)
    assert read_state(feeds) != before[0] and read_state(changes)["cursor"] != before[1]["cursor"]


@pytest.mark.parametrize("key", ["status", FEEDS])
def test_status_and_report_read_while_a_sync_is_inside_a_state_transaction(deployment, tmp_path, key):
    """status and report take no lock of the sync's and do not wait for its transaction
    (of status.db, or of state.db's feed records): they show the last run's state."""
    assert deployment.run("sync").returncode == 0
    before = load_status(deployment.state)
    book_two(deployment)
    marker = tmp_path / "paused"
    err = tmp_path / "sync.err"
    with err.open("w") as stderr_file:  # (a file: a pipe nobody reads while it waits could fill)
        sync = subprocess.Popen([sys.executable, "-c", WRAPPER, key, "inside", str(marker), "sync", "--config",
                                 str(deployment.config)], stdout=subprocess.DEVNULL, stderr=stderr_file,
                                text=True, env=deployment.env(), cwd=deployment.root)
    try:
        waited = time.monotonic() + 30
        while not marker.exists() and sync.poll() is None and time.monotonic() < waited:
            time.sleep(0.02)
        assert marker.exists(), err.read_text()
        # (a status or report that waited for the sync would wait past these timeouts)
        status = deployment.run("status", "--json", timeout=20)
        page = tmp_path / "page.html"
        report = deployment.run("report", "--html", str(page), timeout=20)
    finally:
        marker.write_text("go")
        sync.wait(timeout=60)
    assert sync.returncode == 0, err.read_text()
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["run"]["finished"] == before["run"]["finished"]  # the last run's
    assert report.returncode == 0 and page.stat().st_size > 0, report.stderr
    assert load_status(deployment.state)["run"] != before["run"]  # then the paused sync recorded its own
