"""Work orders against the real CLI: they block units without ever appearing in the change
feed, so incremental ticks look at them (one SearchWorkOrders page a tick)."""

from __future__ import annotations

import datetime as dt

from feeds import read_nights

from escapia_ical.state import read_state, write_state
from escapia_ical.status import load_status

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)
UNIT = "1020-105"  # no reservations


def settle(deployment) -> None:
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    deployment.sandbox.reset_request_log()


def test_a_steady_tick_costs_two_requests(deployment):
    settle(deployment)
    assert deployment.run("sync").returncode == 0
    sandbox = deployment.sandbox
    assert {op: sandbox.request_count(op) for op in ("GetReservationChanges", "SearchWorkOrders")} == {
        "GetReservationChanges": 1, "SearchWorkOrders": 1}
    assert sandbox.request_count() == 2  # every unit was fetched moments ago: no reconcile slot due


def test_a_work_order_shows_at_the_next_tick_and_its_completion_frees_the_nights_at_once(deployment):
    sandbox = deployment.sandbox
    settle(deployment)
    order = sandbox.add_work_order(UNIT, TODAY + 20 * DAY, TODAY + 23 * DAY)  # nights 20..23
    version = sandbox.version
    result = deployment.run("sync", "-v")
    assert result.returncode == 0, result.stderr
    assert sandbox.version == version  # not in the change feed
    assert read_nights(deployment.feed(UNIT)) == {TODAY + (20 + i) * DAY for i in range(4)} == deployment.truth(UNIT)
    assert sandbox.request_count("GetUnitNonAvailability") == 1 and "1 whose work orders changed" in result.stderr

    sandbox.complete_work_order(order)
    sandbox.reset_request_log()
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert read_nights(deployment.feed(UNIT)) == set() == deployment.truth(UNIT)
    # Not on the work order's word (a hold may still book those nights): the reservations view
    # (one SearchReservationSummaries, which sees the open work orders too) shows them free.
    assert sandbox.request_count("GetWorkOrder") == 0
    assert sandbox.request_count("SearchReservationSummaries") == 1


def test_a_shortened_work_order_frees_only_what_it_no_longer_covers(deployment):
    sandbox = deployment.sandbox
    order = sandbox.add_work_order(UNIT, TODAY + 30 * DAY, TODAY + 39 * DAY)
    settle(deployment)
    sandbox.change_work_order(order, end=TODAY + 34 * DAY)
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert read_nights(deployment.feed(UNIT)) == deployment.truth(UNIT) == {TODAY + (30 + i) * DAY for i in range(5)}
    assert sandbox.request_count("GetWorkOrder") == 0


def test_a_closed_work_order_does_not_free_the_nights_of_a_hold(deployment):
    """A Maintenance hold books nights a work order blocked too: the order closing, in the
    same tick as a calendar that wrongly answers nothing, frees none of them."""
    sandbox = deployment.sandbox
    start = TODAY + 40 * DAY
    order = sandbox.add_work_order(UNIT, start, start + 3 * DAY)
    sandbox.add_reservation(UNIT, start, start + 4 * DAY, hold_type="Maintenance")
    settle(deployment)
    before = read_nights(deployment.feed(UNIT))
    assert {start + i * DAY for i in range(4)} <= before
    sandbox.complete_work_order(order)
    sandbox.inject("empty", op="GetUnitNonAvailability", unit=UNIT, times=1)
    result = deployment.run("sync")
    assert result.returncode == 1 and "held" in result.stderr, result.stderr
    assert {start + i * DAY for i in range(4)} <= read_nights(deployment.feed(UNIT))


def test_without_the_grant_one_note_a_run_and_the_shorter_reconcile_shows_work_orders(deployment):
    sandbox = deployment.sandbox
    settle(deployment)
    sandbox.work_orders_granted = False
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "SearchWorkOrders is not granted to this partner (HTTP 403)" in lines[0]
    assert "every 1 h" in lines[0] and "warning" in lines[0]
    status = load_status(deployment.state)
    assert status["accounts"]["sandbox"]["responses"].get("SearchWorkOrders 403") == 1

    sandbox.add_work_order(UNIT, TODAY + 10 * DAY, TODAY + 11 * DAY)
    sandbox.reset_request_log()
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(UNIT)) == set()  # unseen until the unit's reconcile
    assert sandbox.request_count("GetUnitNonAvailability") == 0
    # An hour on (every unit fetched an hour ago): the fallback reconcile fetches them all.
    changes = deployment.state / "accounts" / "sandbox" / "changes.json"
    data = read_state(changes)
    hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61)).isoformat()
    data["fetched"] = {unit: hour_ago for unit in data["fetched"]}
    write_state(changes, data)
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    assert sandbox.request_count("GetUnitNonAvailability") == len(sandbox.unit_ids())
    assert read_nights(deployment.feed(UNIT)) == deployment.truth(UNIT) == {TODAY + 10 * DAY, TODAY + 11 * DAY}


def test_with_the_grant_an_hour_old_fetch_is_not_due(deployment):
    settle(deployment)
    changes = deployment.state / "accounts" / "sandbox" / "changes.json"
    data = read_state(changes)
    hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61)).isoformat()
    data["fetched"] = {unit: hour_ago for unit in data["fetched"]}
    write_state(changes, data)
    assert deployment.run("sync").returncode == 0
    assert deployment.sandbox.request_count("GetUnitNonAvailability") == 0
