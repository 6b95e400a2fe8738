"""Corrupt state heals: every unreadable or wrong-shaped state document is one warning naming
it, is treated as absent, and the next sync rewrites it. Nothing in a state document can make
a sync write or delete a file outside the account's folder.

The documents are rows of state.db and status.db (escapia_ical.store); the damage is planted
with sqlite3 directly, as a disk error or a hand edit would leave it: a whole document
replaced by one bad row, or one bad row among the rows of a split document. Tokens are
still files of their own."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import account_yaml, write_config

from escapia_ical.state import AccountState
from escapia_ical.status import load_status

TRUNCATED = b'{"version": 1, "accounts": {"sandbox": {"units": {"1020-1'
INVALID_UTF8 = b'{"version": 1, "accounts": {"\xff\xfe": {}}}'

STATUS_CORRUPTIONS = {
    "list": b"[]",
    "string": b'"x"',
    "no version": b'{"accounts": []}',
    "accounts list": b'{"version": 1, "accounts": []}',
    "account list": b'{"version": 1, "accounts": {"sandbox": []}}',
    "nested wrong types": json.dumps({"version": 1, "run": [], "accounts": {"sandbox": {
        "units": {"1020-101": {"last_success": "yesterday", "events": "3", "last_error": 5},
                  "1020-102": []},
        "responses_total": {"GetUnitNonAvailability 200": "many"}, "feeds_rewritten_total": None,
        "last_success": 1}}}).encode(),
    "truncated": TRUNCATED,
}
FEEDS_CORRUPTIONS = {
    "list": b"[]",
    "string": b'"x"',
    "entry list": b'{"1020-101.ics": []}',
    "nested wrong types": json.dumps({
        "1020-101.ics": {"unit": ["1020-101"], "events": "3"},
        "1020-102.ics": {"unit": "1020-102", "ranges": 5, "day": 20261123},
        "1020-103.ics": {"unit": "1020-103", "digest": {"sha": 1}, "retired": []}}).encode(),
    "truncated": TRUNCATED,
}
ROW_CORRUPTIONS = {  # one row of a split document (the chunk of a unit's status, of a feed's record)
    "wrong type": b"[]",
    "truncated": b'{"unit": "1020-1',
}
TOKEN_CORRUPTIONS = {  # (bytes, warned): a wrong shape is quietly replaced by a new token
    "list": (b"[]", False),
    "wrong types": (b'{"fingerprint": [], "expiration": 5, "authorization": {"Bearer": 1}}', False),
    "invalid utf-8": (INVALID_UTF8, True),
    "truncated": (TRUNCATED, True),
}
STATUS_KEY, FEEDS_KEY = "status", "accounts/sandbox/feeds"
# Text that is not UTF-8 (a disk error, a hand edit): sqlite3 cannot even hand such a row
# over (OperationalError "Could not decode to UTF-8"), so it is tested on its own below.
INVALID_UTF8_DAMAGES = {
    "status": ("status.db", STATUS_KEY, ()),
    "status unit row": ("status.db", STATUS_KEY, ("accounts", "sandbox", "units", "1020-101")),
    "feeds": ("state.db", FEEDS_KEY, ()),
    "feeds entry row": ("state.db", FEEDS_KEY, None),  # None: the first feed's record
}


def plant(db: Path, key: str, body: bytes, part: tuple[str, ...] = ()) -> None:
    """Damage the document ``key`` of ``db``: with no ``part``, replace all its rows with one
    row for the document itself holding ``body``; else replace the body of the (existing)
    row holding that entry only: its own, or its chunk's (escapia_ical.store), whose other
    entries are then lost too. ``body`` is stored as TEXT byte for byte (so it may be
    invalid UTF-8)."""
    with sqlite3.connect(db) as con:
        if part:
            row = _row_of(con, key, part)
            changed = con.execute("UPDATE documents SET body = CAST(? AS TEXT) WHERE key = ? AND part = ?",
                                  (body, key, row)).rowcount
            assert changed == 1, f"no row {list(part)} of {key} in {db}"
        else:
            con.execute("DELETE FROM documents WHERE key = ?", (key,))
            con.execute("INSERT INTO documents (key, part, body) VALUES (?, '[]', CAST(? AS TEXT))",
                        (key, body))
    con.close()


def _row_of(con: sqlite3.Connection, key: str, path: tuple[str, ...]) -> str | None:
    """The part of the row that holds the entry at ``path``: its own, or its chunk's."""
    for part, body in con.execute("SELECT part, body FROM documents WHERE key = ?", (key,)):
        place = json.loads(part)
        if tuple(place) == path or (place and isinstance(place[-1], list) and tuple(place[:-1]) == path[:-1]
                                    and path[-1] in json.loads(body)):
            return part
    return None


def parts(db: Path, key: str) -> list[tuple[str, ...]]:
    """The paths of the entries the document ``key`` of ``db`` is stored as (a chunk's
    entries one by one), but the document's own."""
    with sqlite3.connect(db) as con:
        found = []
        for part, body in con.execute("SELECT part, body FROM documents WHERE key = ?", (key,)):
            place = json.loads(part)
            if place and isinstance(place[-1], list):  # a chunk (escapia_ical.store)
                found += [(*place[:-1], name) for name in json.loads(body)]
            else:
                found.append(tuple(place))
    con.close()
    return sorted(p for p in found if p and p != ("",))  # ("",): the day the records share


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("escapia-ical: warning:")]


def one_warning_naming(stderr: str, db: Path, key: str) -> bool:
    """Whether ``stderr`` holds exactly one warning, and it names the database and the document."""
    warnings = warnings_of(stderr)
    return len(warnings) == 1 and str(db) in warnings[0] and key in warnings[0]


def assert_loads_cleanly(load, caplog) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load()
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def status_damages(deployment) -> list[tuple[str, tuple[str, ...], bytes]]:
    """(case, part, body): the whole status document, then one unit's row."""
    unit = ("accounts", "sandbox", "units", "1020-101")
    assert unit in parts(deployment.state / "status.db", STATUS_KEY)
    return ([(case, (), content) for case, content in STATUS_CORRUPTIONS.items()]
            + [(f"unit row {case}", unit, content) for case, content in ROW_CORRUPTIONS.items()])


def test_corrupt_status_heals(deployment, caplog):
    db = deployment.state / "status.db"
    units = set(deployment.sandbox.unit_ids())
    assert deployment.run("sync").returncode == 0
    for case, part, content in status_damages(deployment):
        plant(db, STATUS_KEY, content, part)
        status = deployment.run("status")
        assert status.returncode in (0, 2), (case, status.stderr)
        assert warnings_of(status.stderr) == status.stderr.splitlines(), case
        assert one_warning_naming(status.stderr, db, STATUS_KEY), (case, status.stderr)
        sync = deployment.run("sync")
        assert sync.returncode == 0, (case, sync.stderr)
        assert one_warning_naming(sync.stderr, db, STATUS_KEY), (case, sync.stderr)
        assert_loads_cleanly(lambda: load_status(deployment.state), caplog)
        assert set(load_status(deployment.state)["accounts"]["sandbox"]["units"]) == units, case
    healed = deployment.run("status")
    assert healed.returncode == 0 and healed.stderr == ""
    assert len(healed.stdout.splitlines()) == 1 + len(units)
    assert os.stat(db).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("mode", ["hsapi", "escapianet"])
def test_corrupt_feeds_heals(deployment, caplog, mode):
    if mode == "escapianet":
        write_config(deployment.config, account_yaml("escapianet-batch"))
    state = AccountState(deployment.state, "sandbox")
    db = deployment.state / "state.db"
    assert deployment.run("sync").returncode == 0
    feeds = {p.name: p.read_bytes() for p in (deployment.output / "sandbox").iterdir()}
    first = sorted(feeds)[0]  # one feed's record: the row of its chunk
    damages = ([(case, (), content) for case, content in FEEDS_CORRUPTIONS.items()]
               + [(f"entry row {case}", (first,), content) for case, content in ROW_CORRUPTIONS.items()])
    for case, part, content in damages:
        plant(db, FEEDS_KEY, content, part)
        sync = deployment.run("sync")
        assert sync.returncode == 0, (case, sync.stderr)
        assert sync.stderr.splitlines() == warnings_of(sync.stderr), case
        assert one_warning_naming(sync.stderr, db, FEEDS_KEY), (case, sync.stderr)
        assert_loads_cleanly(state.feed_stamps, caplog)
        assert sorted(state.feed_stamps()) == sorted(feeds), case
        assert parts(db, FEEDS_KEY) == [(name,) for name in sorted(feeds)], case  # the bad rows are gone
        assert {p.name for p in (deployment.output / "sandbox").iterdir()} == set(feeds), case
    assert os.stat(db).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("damage", list(INVALID_UTF8_DAMAGES))
def test_invalid_utf8_row_heals(deployment, caplog, damage):
    database, key, part = INVALID_UTF8_DAMAGES[damage]
    db = deployment.state / database
    assert deployment.run("sync").returncode == 0
    feeds = sorted(p.name for p in (deployment.output / "sandbox").iterdir())
    plant(db, key, INVALID_UTF8, (feeds[0],) if part is None else part)
    if key == STATUS_KEY:
        status = deployment.run("status")
        assert status.returncode in (0, 2) and one_warning_naming(status.stderr, db, key), status.stderr
    sync = deployment.run("sync")
    assert sync.returncode == 0 and one_warning_naming(sync.stderr, db, key), sync.stderr
    again = deployment.run("sync")
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    assert_loads_cleanly(lambda: load_status(deployment.state), caplog)
    assert_loads_cleanly(AccountState(deployment.state, "sandbox").feed_stamps, caplog)
    assert sorted(AccountState(deployment.state, "sandbox").feed_stamps()) == feeds
    assert set(load_status(deployment.state)["accounts"]["sandbox"]["units"]) == set(deployment.sandbox.unit_ids())


def test_corrupt_token_json_heals(deployment):
    token = AccountState(deployment.state, "sandbox").token_path
    assert deployment.run("sync").returncode == 0
    for case, (content, warned) in TOKEN_CORRUPTIONS.items():
        token.write_bytes(content)
        sync = deployment.run("sync", "--full")
        assert sync.returncode == 0, (case, sync.stderr)
        assert len(warnings_of(sync.stderr)) == warned and sync.stderr.count(str(token)) == warned, case
        cached = json.loads(token.read_text())
        assert cached["authorization"].startswith("Bearer "), case
        assert os.stat(token).st_mode & 0o777 == 0o600
