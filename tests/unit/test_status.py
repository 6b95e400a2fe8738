"""The run status (status.db): merged across runs, never losing the time of the last success."""

import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
import stat
from collections import Counter
from pathlib import Path

import pytest

from escapia_ical import operations
from escapia_ical.state import write_state
from escapia_ical.status import feed_rows, load_status, record_run, status_path
from escapia_ical.sync import AccountResult, SyncReport, UnitOutcome

T1 = dt.datetime(2026, 11, 23, 22, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(minutes=5)


CONFIG = """\
output_dir: out
state_dir: state
accounts:
  - {name: a, api: hsapi, pmcid: "1", client_id: id, client_secret: secret}
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


def report(error=None, unit_error=None, account="a", unit_id="1") -> SyncReport:
    result = AccountResult(account, error=error,
                           requests=Counter({"GetUnitNonAvailability": 3}),
                           responses=Counter({("GetUnitNonAvailability", "200"): 2,
                                              ("GetUnitNonAvailability", "503"): 1}))
    result.units.append(UnitOutcome(account, unit_id, Path("/out/a/1.ics"), error=unit_error, events=4,
                                    rewritten=unit_error is None))
    return SyncReport(accounts={account: result})


def test_failure_keeps_the_last_success(tmp_path):
    record_run(tmp_path, report(), T1, T1, 0)
    record_run(tmp_path, report(error="HTTP 500", unit_error="HTTP 500"), T2, T2, 1)
    status = load_status(tmp_path)
    account, unit = status["accounts"]["a"], status["accounts"]["a"]["units"]["1"]
    assert account["last_success"] == "2026-11-23T22:00:00+00:00"
    assert account["last_attempt"] == "2026-11-23T22:05:00+00:00" and account["last_error"] == "HTTP 500"
    assert unit["last_success"] == "2026-11-23T22:00:00+00:00" and unit["last_error"] == "HTTP 500"
    assert unit["events"] == 4 and unit["file"] == "/out/a/1.ics"
    assert account["responses"] == {"GetUnitNonAvailability 200": 2, "GetUnitNonAvailability 503": 1}
    assert status["run"]["exit_code"] == 1
    assert account["units_fetched"] == 0 and account["unit_errors"] == 1
    assert stat.S_IMODE((tmp_path / "status.db").stat().st_mode) == 0o640  # for a monitoring group


def test_accounts_not_in_this_run_are_kept(tmp_path):
    record_run(tmp_path, report(account="a"), T1, T1, 0)
    record_run(tmp_path, report(account="b"), T2, T2, 0)
    status = load_status(tmp_path)
    assert set(status["accounts"]) == {"a", "b"}
    assert status["accounts"]["a"]["last_attempt"] == "2026-11-23T22:00:00+00:00"


def test_a_crashed_run_is_recorded(tmp_path):
    record_run(tmp_path, report(), T1, T1, 0)
    record_run(tmp_path, SyncReport(), T2, T2, 70)
    status = load_status(tmp_path)
    assert status["run"]["exit_code"] == 70
    assert status["accounts"]["a"]["last_success"] == "2026-11-23T22:00:00+00:00"


def test_status_table_escapes_what_escapia_sent(tmp_path, capsys):
    evil = "1\nfake/unit   1s   9\r\x1b[31m\u2028"
    record_run(tmp_path / "state", report(unit_error=f"HTTP 500 for {evil}", unit_id=evil), T1, T1, 1)
    assert operations.status(write_config(tmp_path), dt.timedelta(minutes=15), False) == 2
    run, header, row = capsys.readouterr().out.splitlines()
    assert run.startswith("the last sync finished ") and run.endswith("is cron running?")  # T1 is old
    assert row.startswith(r"a/1\nfake/unit   1s   9\r\x1b[31m\u2028 ! never")
    assert row.endswith(r"HTTP 500 for 1\nfake/unit   1s   9\r\x1b[31m\u2028")


GOOD_UNIT = {"last_attempt": "2026-11-23T22:00:00+00:00", "last_success": "2026-11-23T22:00:00+00:00",
             "last_error": None, "events": 4, "file": "/out/a/1.ics", "rewritten": True}


@pytest.mark.parametrize(("stored", "expected"), [
    ([], {}),
    ("x", {}),
    ({"accounts": {"a": {"units": {}}}}, {}),  # no version
    ({"version": 2, "accounts": {"a": {"units": {}}}}, {}),
    ({"version": 1, "accounts": []}, {}),
    ({"version": 1, "accounts": {"a": []}}, {}),
    ({"version": 1, "accounts": {"a": {"units": []}}}, {"a": {"units": {}}}),
    ({"version": 1, "accounts": {"a": {"units": {"1": GOOD_UNIT, "2": "x"}, "requests": {"x": "1"},
                                        "last_error": 5, "unit_errors": True, "units_fetched": 3}}},
     {"a": {"units": {"1": GOOD_UNIT}, "units_fetched": 3}}),
    ({"version": 1, "accounts": {"a": {"units": {"1": {**GOOD_UNIT, "last_success": "yesterday",
                                                       "events": "4", "file": None, "extra": [1]}}}}},
     {"a": {"units": {"1": {k: v for k, v in GOOD_UNIT.items() if k not in ("last_success", "events", "file")}
                            | {"extra": [1]}}}}),
    ({"version": 1, "accounts": {"a": {"units": {"1": {**GOOD_UNIT, "last_success": "2026-11-23T22:00:00"}}}}},
     {"a": {"units": {"1": {k: v for k, v in GOOD_UNIT.items() if k != "last_success"}}}}),  # no zone
    # the same shape as a right entry (keys, types), a time that is not one: still refused
    ({"version": 1, "accounts": {"a": {"units": {"1": GOOD_UNIT, "2": {**GOOD_UNIT, "last_attempt": "soon"}}}}},
     {"a": {"units": {"1": GOOD_UNIT, "2": {k: v for k, v in GOOD_UNIT.items() if k != "last_attempt"}}}}),
])
def test_load_status_keeps_what_is_right_and_warns_once(tmp_path, caplog, stored, expected):
    write_state(status_path(tmp_path), stored)  # as a damaged or hand-edited database holds it
    with caplog.at_level(logging.WARNING):
        status = load_status(tmp_path)
    assert status["accounts"] == expected
    [warning] = caplog.records
    assert f"{tmp_path / 'status.db'} (status) is not as expected" in warning.getMessage()
    feed_rows(status, T2)  # what `escapia-ical status` computes from it
    record_run(tmp_path, report(), T2, T2, 0)  # what a sync does with it
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_status(tmp_path)["accounts"]["a"]["units"]["1"]["last_success"] == "2026-11-23T22:05:00+00:00"
    assert not caplog.records


def plant(db: Path, key: str, body: str | bytes) -> None:
    """Make ``body`` the only row of document ``key`` in the database ``db``, as a damaged
    database would hold it (bytes: stored as text that is not UTF-8)."""
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("DELETE FROM documents WHERE key = ?", (key,))
        con.execute("INSERT INTO documents (key, part, body) VALUES (?, '[]', CAST(? AS TEXT))", (key, body))


@pytest.mark.parametrize("content", [
    '{"version": 1, "accounts": {"a',
    b"\xff\xfe{}",
    "[" * 100_000,
])
def test_unreadable_status_is_absent_with_one_warning(tmp_path, caplog, content):
    record_run(tmp_path, report(), T1, T1, 0)
    plant(tmp_path / "status.db", "status", content)
    with caplog.at_level(logging.WARNING):
        assert load_status(tmp_path) == {"version": 1, "accounts": {}}
    [warning] = caplog.records
    assert str(tmp_path / "status.db") in warning.getMessage() and "unreadable row" in warning.getMessage()


def test_the_grafana_dashboard_uses_only_metrics_we_write(tmp_path):
    """config/grafana-dashboard.json must not chart a metric name that does not exist."""
    from escapia_ical.metrics import write_metrics

    status = record_run(tmp_path, report(), T1, T1, 0)
    written = tmp_path / "m.prom"
    write_metrics(written, status, T2)
    names = set(re.findall(r"^# TYPE (\w+) (\w+)", written.read_text(), re.M))
    exposed = {n for n, kind in names} | {f"{n}_total" for n, kind in names if kind == "counter"}
    dashboard = json.loads((Path(__file__).parents[2] / "config" / "grafana-dashboard.json").read_text())
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"escapia_ical_\w+", t["expr"])}
    assert used and used <= exposed, used - exposed
