"""EscapiaNET against the published contract, end to end: quiet ticks (one summary batch when
nothing changed), cached answers, a refused password, a cut unit list, a calendar that covers
less than the window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import FUTURE_DAYS, PAST_DAYS, Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.sandbox import Sandbox
from escapia_ical.state import describe, read_state, write_state

TODAY = dt.date.today()
UNIT = "1020-101"


def deploy(tmp_path, sandbox, mode: str = "escapianet-batch", extra: str = "") -> Deployment:
    config = tmp_path / "accounts.yaml"
    write_config(config, account_yaml(mode, extra=extra))
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state", mode)


def free_stay(sandbox, unit: str, nights: int = 3, offset: int = 200) -> tuple[dt.date, dt.date]:
    start = TODAY + dt.timedelta(days=offset)
    while sandbox.blocked_nights(unit, start, start + dt.timedelta(days=nights)):
        start += dt.timedelta(days=1)
    return start, start + dt.timedelta(days=nights)


def summaries(sandbox) -> list[bool]:
    """For each batch request logged: was it a summary (SummaryOnly="true")?"""
    return [b'SummaryOnly="true"' in r["request"] for r in sandbox.soap_requests
            if r["op"] == "UnitCalendarAvailBatch"]


@pytest.mark.parametrize("mode", ["escapianet-batch", "escapianet-per_unit"])
def test_a_quiet_tick_asks_once_and_a_booking_shows_at_the_next(tmp_path, sandbox, mode):
    d = deploy(tmp_path, sandbox, mode)
    assert d.run("sync").returncode == 0
    sandbox.reset_request_log()
    assert d.run("sync").returncode == 0
    assert sandbox.request_count() == 1 and summaries(sandbox) == [True]  # nothing changed
    start, end = free_stay(sandbox, UNIT)
    sandbox.add_reservation(UNIT, start, end)
    sandbox.reset_request_log()
    result = d.run("sync")
    assert result.returncode == 0, result.stderr
    assert summaries(sandbox) == [True]
    assert sandbox.request_count("UnitCalendarAvail") == 1 and sandbox.request_count() == 2
    assert [r["unit"] for r in sandbox.requests if r["op"] == "UnitCalendarAvail"] == [UNIT]
    for unit in sandbox.unit_ids():
        assert read_nights(d.feed(unit)) == d.truth(unit), unit
    assert {start, end - dt.timedelta(days=1)} <= read_nights(d.feed(UNIT))
    for reads in (1, 0):  # read once more (LastUpdated may have whole seconds), then left alone
        sandbox.reset_request_log()
        assert d.run("sync").returncode == 0
        assert summaries(sandbox) == [True] and sandbox.request_count("UnitCalendarAvail") == reads


def test_full_and_reconcile_ticks_read_every_calendar(tmp_path, sandbox):
    d = deploy(tmp_path, sandbox, extra="    reconcile_hours: 6\n")
    assert d.run("sync").returncode == 0
    sandbox.reset_request_log()
    assert d.run("sync", "--full").returncode == 0
    assert sandbox.request_count("UnitSearch") == 1 and summaries(sandbox) == [False]
    state = d.state / "accounts" / "sandbox" / "escapianet.json"
    data = read_state(state)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=7)).isoformat()
    write_state(state, {**data, "reconciled_at": old})
    sandbox.reset_request_log()
    assert d.run("sync").returncode == 0  # the reconcile is due: a full tick
    assert sandbox.request_count("UnitSearch") == 1 and summaries(sandbox) == [False]


def damage_the_quiet_state(d: Deployment) -> tuple[Path, str]:
    """Sync, give escapianet's stamps the wrong shape, sync again (-v): (the document, its stderr)."""
    assert d.run("sync").returncode == 0
    state = d.state / "accounts" / "sandbox" / "escapianet.json"
    write_state(state, {**read_state(state), "stamps": ["not", "a", "mapping"]})
    d.sandbox.reset_request_log()
    result = d.run("sync", "-v")
    assert result.returncode == 0, result.stderr
    return state, result.stderr


def test_a_damaged_state_document_is_reported_and_the_account_syncs_fully(tmp_path, sandbox):
    d = deploy(tmp_path, sandbox)
    state, stderr = damage_the_quiet_state(d)
    warned = [line for line in stderr.splitlines() if "is not as expected" in line]
    assert len(warned) == 1 and "accounts/sandbox/escapianet" in warned[0], stderr
    assert summaries(sandbox) == [False] and sandbox.request_count("UnitSearch") == 1
    assert isinstance(read_state(state)["stamps"], dict)


def test_a_damaged_state_document_is_named_as_the_database_names_it(tmp_path, sandbox):
    state, stderr = damage_the_quiet_state(deploy(tmp_path, sandbox))
    assert f"state {describe(state)} is not as expected" in stderr


def test_a_cached_answer_does_not_lose_a_change(tmp_path, sandbox):
    d = deploy(tmp_path, sandbox)
    assert d.run("sync").returncode == 0
    sandbox.cached_batch = True  # from now on every batch answer repeats the previous one
    start, end = free_stay(sandbox, UNIT)
    sandbox.add_reservation(UNIT, start, end)
    before = d.feed(UNIT).read_bytes()
    assert d.run("sync").returncode == 0
    assert d.run("sync").returncode == 0
    assert d.feed(UNIT).read_bytes() == before  # the cache hid the change: nothing to publish
    sandbox.cached_batch = False
    sandbox.reset_request_log()
    assert d.run("sync").returncode == 0
    assert summaries(sandbox) == [True]
    assert read_nights(d.feed(UNIT)) == d.truth(UNIT)
    assert start in read_nights(d.feed(UNIT))


def test_a_refused_password_on_the_batch_is_one_account_error(tmp_path, sandbox):
    d = deploy(tmp_path, sandbox)
    assert d.run("sync").returncode == 0
    before = {u: d.feed(u).read_bytes() for u in sandbox.unit_ids()}
    for args in (("sync",), ("sync", "--full")):  # the quiet tick's summary, the full batch
        result = d.run(*args, SANDBOX_SOAP_PASSWORD="not-the-password")
        assert result.returncode == 1, result.stderr
        errors = result.stderr.splitlines()
        assert len(errors) == 2 and errors[1].startswith("escapia-ical: error: sync incomplete"), result.stderr
        assert any("sandbox: UnitCalendarAvailBatch: Escapia error 497 (type 4)" in line
                   or "sandbox: UnitSearch: Escapia error 497 (type 4)" in line for line in errors), result.stderr
        assert "no calendar" not in result.stderr and "sandbox/1020" not in result.stderr, result.stderr
        assert {u: d.feed(u).read_bytes() for u in sandbox.unit_ids()} == before


def test_a_cut_unit_list_syncs_the_units_listed_and_fails_the_account(tmp_path):
    with Sandbox(unit_list_cap=5) as sandbox:
        d = deploy(tmp_path, sandbox)
        result = d.run("sync")
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if "moredata" in line]
        assert len(lines) == 1 and "the 5 units listed were synced" in lines[0], result.stderr
        listed = sandbox.unit_ids()[:5]
        assert all(read_nights(d.feed(u)) == d.truth(u) for u in listed)
        assert not any(d.feed(u).exists() for u in sandbox.unit_ids()[5:])
        assert d.run("sync").returncode == 1  # a quiet tick still says so (the cached list is cut)


def test_units_past_a_cut_unit_list_are_not_retired(tmp_path):
    """Published units a later, cut list leaves out are not gone: nothing is retired."""
    with Sandbox() as sandbox:
        d = deploy(tmp_path, sandbox)
        assert d.run("sync").returncode == 0
        sandbox.unit_list_cap = 7  # one unit short: below what the vanishing guard catches
        assert d.run("sync", "--full").returncode == 1
        assert "retired" not in d.run("status").stdout
        assert d.run("prune", "--now").stdout == ""
        assert all(d.feed(u).exists() for u in sandbox.unit_ids())


def test_a_batch_shorter_than_the_window_publishes_the_rest_blocked(tmp_path):
    with Sandbox(calendar_max_days=100) as sandbox:
        d = deploy(tmp_path, sandbox)
        result = d.run("sync")
        assert result.returncode == 1
        assert "Escapia's answer does not cover" in result.stderr and "published as blocked" in result.stderr
        first_uncovered = TODAY - dt.timedelta(days=PAST_DAYS) + dt.timedelta(days=100)
        last = TODAY + dt.timedelta(days=FUTURE_DAYS - 1)
        rest = {first_uncovered + dt.timedelta(days=i) for i in range((last - first_uncovered).days + 1)}
        for unit in sandbox.unit_ids():
            nights = read_nights(d.feed(unit))
            assert rest <= nights, unit
            covered = sandbox.blocked_nights(unit, TODAY, first_uncovered)
            assert {n for n in nights if TODAY <= n < first_uncovered} == covered, unit
