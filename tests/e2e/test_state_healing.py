"""Corrupt state heals: every unreadable or wrong-shaped state file is one warning naming
it, is treated as absent, and the next sync rewrites it. Nothing in a state file can make
a sync write or delete a file outside the account's folder."""

from __future__ import annotations

import json
import logging
import os

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
    "invalid utf-8": INVALID_UTF8,
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
    "invalid utf-8": INVALID_UTF8,
    "truncated": TRUNCATED,
}
TOKEN_CORRUPTIONS = {  # (bytes, warned): a wrong shape is quietly replaced by a new token
    "list": (b"[]", False),
    "wrong types": (b'{"fingerprint": [], "expiration": 5, "authorization": {"Bearer": 1}}', False),
    "invalid utf-8": (INVALID_UTF8, True),
    "truncated": (TRUNCATED, True),
}


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("escapia-ical: warning:")]


def assert_loads_cleanly(load, caplog) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load()
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_corrupt_status_json_heals(deployment, caplog):
    path = deployment.state / "status.json"
    units = set(deployment.sandbox.unit_ids())
    assert deployment.run("sync").returncode == 0
    for case, content in STATUS_CORRUPTIONS.items():
        path.write_bytes(content)
        status = deployment.run("status")
        assert status.returncode in (0, 2), (case, status.stderr)
        assert warnings_of(status.stderr) == status.stderr.splitlines(), case
        assert len(warnings_of(status.stderr)) == 1 and str(path) in status.stderr, (case, status.stderr)
        sync = deployment.run("sync")
        assert sync.returncode == 0, (case, sync.stderr)
        assert len(warnings_of(sync.stderr)) == 1 and str(path) in sync.stderr, (case, sync.stderr)
        assert_loads_cleanly(lambda: load_status(deployment.state), caplog)
        assert set(load_status(deployment.state)["accounts"]["sandbox"]["units"]) == units, case
    healed = deployment.run("status")
    assert healed.returncode == 0 and healed.stderr == ""
    assert len(healed.stdout.splitlines()) == 1 + len(units)


@pytest.mark.parametrize("mode", ["hsapi", "escapianet"])
def test_corrupt_feeds_json_heals(deployment, caplog, mode):
    if mode == "escapianet":
        write_config(deployment.config, account_yaml("escapianet-batch"))
    state = AccountState(deployment.state, "sandbox")
    path = deployment.state / "accounts" / "sandbox" / "feeds.json"
    assert deployment.run("sync").returncode == 0
    feeds = {p.name: p.read_bytes() for p in (deployment.output / "sandbox").iterdir()}
    for case, content in FEEDS_CORRUPTIONS.items():
        path.write_bytes(content)
        sync = deployment.run("sync")
        assert sync.returncode == 0, (case, sync.stderr)
        assert sync.stderr.splitlines() == warnings_of(sync.stderr), case
        assert len(warnings_of(sync.stderr)) == 1 and str(path) in sync.stderr, (case, sync.stderr)
        assert_loads_cleanly(state.feed_stamps, caplog)
        assert sorted(state.feed_stamps()) == sorted(feeds), case
        assert {p.name for p in (deployment.output / "sandbox").iterdir()} == set(feeds), case


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
