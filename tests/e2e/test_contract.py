"""The source contract: the same end-to-end expectations for every way of reading Escapia.

HSAPI, EscapiaNET per unit and EscapiaNET batch must all publish feeds whose blocked
nights equal the sandbox's truth, leave unchanged feeds untouched, show booking changes
on the next run, and keep a unit's last good feed when its fetch fails.
"""

from __future__ import annotations

import datetime as dt
import time

import icalendar
import pytest
from conftest import MODES, Deployment, account_yaml, write_config
from feeds import read_nights

TODAY = dt.date.today()


@pytest.fixture(params=MODES)
def contract(request, tmp_path, sandbox) -> Deployment:
    config = tmp_path / "accounts.yaml"
    write_config(config, account_yaml(request.param))
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state", request.param)


def events(path) -> list[tuple[dt.date, dt.date]]:
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    return sorted((e.decoded("dtstart"), e.decoded("dtend")) for e in calendar.walk("VEVENT"))


def test_every_feed_equals_the_truth(contract):
    result = contract.run("sync")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    unit_ids = contract.sandbox.unit_ids()
    assert {p.name for p in (contract.output / "sandbox").iterdir()} == {contract.feed(u).name for u in unit_ids}
    for unit_id in unit_ids:
        assert read_nights(contract.feed(unit_id)) == contract.truth(unit_id), unit_id


def test_stay_boundaries_survive(contract):
    """Back-to-back and one-night stays are separate events in every mode."""
    assert contract.run("sync").returncode == 0
    start, end = contract.window
    stays = [(max(a, start), min(d, end)) for a, d in contract.sandbox.stays("1020-101") if d > start and a < end]
    assert any(a[1] == b[0] for a, b in zip(stays, stays[1:], strict=False)), "seed has back-to-back stays"
    assert events(contract.feed("1020-101")) == stays


def test_unchanged_calendars_are_not_rewritten(contract):
    assert contract.run("sync").returncode == 0
    folder = contract.output / "sandbox"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    time.sleep(1.1)
    assert contract.run("sync").returncode == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def test_booking_changes_show_on_the_next_run(contract):
    sandbox = contract.sandbox
    assert contract.run("sync").returncode == 0
    unit = "1020-105"  # the seeded unit with no reservations
    first = sandbox.add_reservation(unit, TODAY + dt.timedelta(days=30), TODAY + dt.timedelta(days=33))
    second = sandbox.add_reservation(unit, TODAY + dt.timedelta(days=33), TODAY + dt.timedelta(days=34))
    assert contract.run("sync").returncode == 0
    assert events(contract.feed(unit)) == [(TODAY + dt.timedelta(days=30), TODAY + dt.timedelta(days=33)),
                                           (TODAY + dt.timedelta(days=33), TODAY + dt.timedelta(days=34))]
    sandbox.move_reservation(first, TODAY + dt.timedelta(days=40), TODAY + dt.timedelta(days=45))
    sandbox.cancel_reservation(second)
    assert contract.run("sync").returncode == 0
    assert read_nights(contract.feed(unit)) == contract.truth(unit)
    assert events(contract.feed(unit)) == [(TODAY + dt.timedelta(days=40), TODAY + dt.timedelta(days=45))]


def test_a_failing_unit_keeps_its_last_good_feed(contract):
    sandbox = contract.sandbox
    assert contract.run("sync").returncode == 0
    victim = "1020-101"
    kept = contract.feed(victim).read_bytes()
    sandbox.add_reservation(victim, TODAY + dt.timedelta(days=500), TODAY + dt.timedelta(days=502))
    sandbox.add_reservation("1020-105", TODAY + dt.timedelta(days=500), TODAY + dt.timedelta(days=502))
    sandbox.fail_unit(victim, status=500)
    result = contract.run("sync")
    assert result.returncode == 1, result.stderr
    assert contract.feed(victim).read_bytes() == kept
    assert read_nights(contract.feed("1020-105")) == contract.truth("1020-105")
    assert victim in result.stderr and "Traceback" not in result.stderr
    sandbox.clear_faults()
    assert contract.run("sync").returncode == 0
    assert read_nights(contract.feed(victim)) == contract.truth(victim)


def test_requests_per_sync(contract):
    contract.run("sync")
    contract.sandbox.reset_request_log()
    assert contract.run("sync").returncode == 0
    units = len(contract.sandbox.unit_ids())
    if contract.mode == "hsapi":  # nothing changed: one look at the change feed and one at the
        sandbox = contract.sandbox  # work orders, plus the reconcile's share (a few units at most)
        assert sandbox.request_count("GetReservationChanges") == 1
        assert sandbox.request_count("SearchWorkOrders") == 1
        assert sandbox.request_count() == 2 + sandbox.request_count("GetUnitNonAvailability")
        assert sandbox.request_count("GetUnitNonAvailability") <= 2
        return
    expected = {
        # pages of 3; and the change feed, read for what it shows freed
        "hsapi-full": {"SearchUnitSummaries": -(-units // 3), "GetUnitNonAvailability": units,
                       "GetReservationChanges": 1, "SearchWorkOrders": 1},
        # a quiet tick: one summary batch says nothing changed
        "escapianet-per_unit": {"UnitCalendarAvailBatch": 1},
        "escapianet-batch": {"UnitCalendarAvailBatch": 1},
    }[contract.mode]
    assert contract.sandbox.request_count() == sum(expected.values())
    for operation, count in expected.items():
        assert contract.sandbox.request_count(operation) == count
