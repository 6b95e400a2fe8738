"""Incremental mode is never less correct than a full sync.

Random booking changes (create, move, extend, cancel, owner holds, moves between units)
happen in the sandbox between ticks; after every tick every feed equals the truth, while
the ticks fetch far less than everything.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from conftest import Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.sandbox import Sandbox
from escapia_ical.state import delete_state, describe, read_state, write_state

TODAY = dt.date.today()


KINDS = ["create", "hold", "move", "extend", "cancel", "other-unit"]


def random_change(sandbox, rng: random.Random, kind: str | None = None) -> str:
    units = sandbox.unit_ids()
    unit = rng.choice(units)
    stays = sandbox.reservations(unit)
    kind = kind or rng.choice(KINDS)
    if not stays:
        kind = "create"
    if kind in ("create", "hold"):
        start = TODAY + dt.timedelta(days=rng.randrange(-3, 700))
        sandbox.add_reservation(unit, start, start + dt.timedelta(days=rng.randrange(1, 9)),
                                hold_type="Owner" if kind == "hold" else None)
        return kind
    stay = rng.choice(stays)
    start, end = dt.date.fromisoformat(str(stay["start"])), dt.date.fromisoformat(str(stay["end"]))
    if kind == "cancel":
        sandbox.cancel_reservation(stay["id"])
    elif kind == "move":
        shift = dt.timedelta(days=rng.randrange(-20, 40))
        sandbox.move_reservation(stay["id"], start + shift, end + shift)
    elif kind == "extend":
        sandbox.move_reservation(stay["id"], start, end + dt.timedelta(days=rng.randrange(1, 5)))
    else:  # a stay moved to another unit: cancel here, book there
        sandbox.cancel_reservation(stay["id"])
        sandbox.add_reservation(rng.choice(units), start, end)
    return kind


def assert_all_true(deployment) -> None:
    for unit_id in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit_id)) == deployment.truth(unit_id), unit_id


def test_random_changes_between_ticks_always_converge(deployment):
    sandbox, rng = deployment.sandbox, random.Random(4)
    assert deployment.run("sync").returncode == 0
    assert_all_true(deployment)
    kinds, fetched = set(), []
    for tick in range(8):
        kinds.add(random_change(sandbox, rng, KINDS[tick % len(KINDS)]))
        for _ in range(rng.randrange(0, 3)):
            kinds.add(random_change(sandbox, rng))
        sandbox.reset_request_log()
        result = deployment.run("sync")
        assert result.returncode == 0, result.stderr
        assert_all_true(deployment)
        fetched.append(sandbox.request_count("GetUnitNonAvailability"))
    assert kinds == set(KINDS)
    units = len(sandbox.unit_ids())
    assert sum(fetched) < 8 * units / 2, f"incremental ticks fetched {fetched} of {units} units each"


def test_a_steady_tick_costs_one_request(deployment):
    assert deployment.run("sync").returncode == 0
    deployment.sandbox.reset_request_log()
    # Pin the reconcile out of this tick: every unit was fetched moments ago, and the
    # reconcile slots only come round once per 6 h.
    assert deployment.run("sync").returncode == 0
    counts = {op: deployment.sandbox.request_count(op) for op in ("GetReservationChanges", "auth/token",
                                                                   "SearchUnitSummaries")}
    assert counts == {"GetReservationChanges": 1, "auth/token": 0, "SearchUnitSummaries": 0}
    assert deployment.sandbox.request_count() <= 2  # + at most one unit whose slot this is


def test_lost_or_rejected_cursor_falls_back_to_a_full_sync(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    changes = deployment.state / "accounts" / "sandbox" / "changes.json"  # names the document
    unit = sandbox.unit_ids()[2]
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=40), TODAY + dt.timedelta(days=44))
    assert read_state(changes) is not None
    delete_state(changes)  # state lost
    sandbox.reset_request_log()
    assert deployment.run("sync").returncode == 0
    assert sandbox.request_count("GetUnitNonAvailability") == len(sandbox.unit_ids())
    assert_all_true(deployment)
    data = read_state(changes)
    data["cursor"] = 10**9  # a version from the future: Escapia answers with an earlier one
    write_state(changes, data)
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=60), TODAY + dt.timedelta(days=61))
    result = deployment.run("sync")
    assert result.returncode == 0 and "fetching every unit" in result.stderr
    assert_all_true(deployment)


def test_a_failed_fetch_is_owed_to_the_next_tick(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    unit = sandbox.unit_ids()[1]
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=30), TODAY + dt.timedelta(days=33))
    sandbox.fail_unit(unit, status=500)
    assert deployment.run("sync").returncode == 1
    sandbox.clear_faults()
    assert deployment.run("sync").returncode == 0  # the change feed is empty now; the fetch is owed
    assert read_nights(deployment.feed(unit)) == deployment.truth(unit)


def hide(sandbox, unit):
    """Leave ``unit`` out of SearchUnitSummaries (a glitchy listing) until the returned
    function is called."""
    real = sandbox.data.search_units
    sandbox.data.search_units = lambda *a, **k: [u for u in real(*a, **k) if u.id != unit]
    return lambda: setattr(sandbox.data, "search_units", real)


def age_listing(deployment, hours: float = 7) -> None:
    path = deployment.state / "accounts" / "sandbox" / "changes.json"
    data = read_state(path)
    data["listed_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).isoformat()
    write_state(path, data)


def test_a_unit_missing_from_one_listing_gets_its_changes_next_run(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    unit = sandbox.unit_ids()[1]
    age_listing(deployment)  # this run lists the units again...
    restore = hide(sandbox, unit)  # ...and the listing misses one that just got a booking
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=20), TODAY + dt.timedelta(days=25))
    first = deployment.run("sync")
    assert first.returncode == 0 and "does not list" in first.stderr
    restore()
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(unit)) == deployment.truth(unit)


def test_a_feed_failing_its_daily_roll_does_not_stop_the_account(deployment):
    sandbox = deployment.sandbox
    bad, other = sandbox.unit_ids()[0], sandbox.unit_ids()[-1]
    assert deployment.run("sync").returncode == 0
    stamps = deployment.state / "accounts" / "sandbox" / "feeds.json"
    data = read_state(stamps)
    for entry in data.values():
        entry["day"] = (TODAY - dt.timedelta(days=1)).isoformat()  # midnight passed
    write_state(stamps, data)
    deployment.feed(bad).unlink()
    deployment.feed(bad).mkdir()  # this feed cannot be written
    start = TODAY + dt.timedelta(days=650)
    sandbox.add_reservation(other, start, start + dt.timedelta(days=1))
    result = deployment.run("sync")
    assert result.returncode == 1 and f"sandbox/{bad}:" in result.stderr
    assert read_nights(deployment.feed(other)) == deployment.truth(other)


def test_a_rotated_feed_token_keeps_the_publish_policy(deployment):
    keys = "    feed_tokens: true\n    feed_token_secret: {}\n    feed_token_grace_days: 7\n"
    write_config(deployment.config, account_yaml(extra=keys.format("s" * 40)))
    assert deployment.run("sync", "--full").returncode == 0
    folder = deployment.output / "sandbox"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    write_config(deployment.config, account_yaml(extra=keys.format("t" * 40)))
    for unit in deployment.sandbox.unit_ids():  # one glitchy empty answer per unit
        deployment.sandbox.inject("empty", op="GetUnitNonAvailability", unit=unit, times=1)
    assert deployment.run("sync", "--full").returncode == 1
    assert all((folder / name).read_bytes() == data for name, data in before.items())


def test_a_unit_escapia_stops_listing_is_retired_kept_then_pruned_and_can_come_back(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    gone = sandbox.unit_ids()[0]
    kept = deployment.feed(gone).read_bytes()
    show_again = hide(sandbox, gone)  # Escapia stops distributing it
    sandbox.reset_request_log()
    assert deployment.run("sync", "--full").returncode == 0
    assert deployment.feed(gone).read_bytes() == kept, "served unchanged during its grace period"
    assert gone not in {r.get("unit") for r in sandbox.requests}, "a retired unit is not fetched"
    status = deployment.run("status")
    assert status.returncode == 0, status.stdout  # retired is not stale
    line = next(line for line in status.stdout.splitlines() if f"sandbox/{gone}" in line)
    assert "retired since" in line and "`prune` removes it 7 days after" in line
    waiting = deployment.run("prune", "--dry-run")
    assert waiting.returncode == 0 and f"sandbox/{gone}: retired; kept until" in waiting.stdout
    assert "would remove" not in waiting.stdout
    # Grace over (its mark 8 days old): the dry run says exactly what the real run does.
    feeds_json = deployment.state / "accounts" / "sandbox" / "feeds.json"
    stamps = read_state(feeds_json)
    eight_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=8)).isoformat()
    for entry in stamps.values():
        if entry["unit"] == gone:
            entry["withdrawn"] = eight_days_ago
    write_state(feeds_json, stamps)
    dry = deployment.run("prune", "--dry-run")
    assert dry.stdout.strip() == f"would remove {deployment.feed(gone)}" and deployment.feed(gone).exists()
    real = deployment.run("prune")
    assert real.returncode == 0 and real.stdout.strip() == f"removed {deployment.feed(gone)}", real.stderr
    assert not deployment.feed(gone).exists()
    assert f"sandbox/{gone}" not in deployment.run("status").stdout
    assert gone not in {e["unit"] for e in read_state(feeds_json).values()}
    assert deployment.run("sync", "--full").returncode == 0
    assert not deployment.feed(gone).exists(), "a pruned unit is not brought back while unlisted"
    show_again()
    assert deployment.run("sync", "--full").returncode == 0
    assert read_nights(deployment.feed(gone)) == deployment.truth(gone), "it comes back: resumed"
    assert "retired" not in deployment.run("status").stdout


def test_prune_never_removes_files_the_state_does_not_know(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    feeds_json = deployment.state / "accounts" / "sandbox" / "feeds.json"
    assert read_state(feeds_json)
    delete_state(feeds_json)  # the state is lost
    units = sandbox.unit_ids()
    for unit in units[:5]:
        hide(sandbox, unit)
    for args in (("prune", "--now"), ("prune", "--dry-run")):
        result = deployment.run(*args)
        assert result.returncode == 0 and result.stdout == ""
        assert result.stderr.count("is not in the state") == len(units), result.stderr
    assert all(deployment.feed(u).exists() for u in units)


def test_a_deleted_feed_comes_back_at_the_next_tick_without_a_fetch(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    unit = next(u for u in sandbox.unit_ids() if deployment.truth(u))
    deployment.feed(unit).unlink()
    sandbox.reset_request_log()
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(unit)) == deployment.truth(unit)
    assert sandbox.request_count("GetUnitNonAvailability") <= 1  # re-rendered from state


def test_a_cancellation_is_explained_by_the_change_feed_alone(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    unit = "1020-104"
    stay = next(s for s in sandbox.reservations(unit) if dt.date.fromisoformat(s["start"]) > TODAY)
    sandbox.cancel_reservation(stay["id"])
    sandbox.reset_request_log()
    result = deployment.run("sync", "-v")
    assert result.returncode == 0, result.stderr
    assert "freed, as the change feed show(s); publishing" in result.stderr
    assert read_nights(deployment.feed(unit)) == deployment.truth(unit)
    assert sandbox.request_count("SearchReservationSummaries") == 0


@pytest.mark.parametrize("future_versions", ["error", "empty"])
def test_a_cursor_ahead_of_escapia_is_detected_and_recovered(tmp_path, future_versions):
    """Escapia's versions start again (or the state came from elsewhere): whether Escapia
    refuses a version it never reached or answers "no changes" for it, the next run
    notices and syncs everything, instead of missing every booking until the reconcile."""
    with Sandbox(max_page_size=3, future_versions=future_versions) as sandbox:
        config = tmp_path / "accounts.yaml"
        write_config(config)
        d = Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state")
        assert d.run("sync").returncode == 0
        cursor = read_state(d.state / "accounts" / "sandbox" / "changes.json")["cursor"]
        sandbox.restart_change_log()
        unit = "1020-105"
        sandbox.add_reservation(unit, TODAY + dt.timedelta(days=50), TODAY + dt.timedelta(days=53))
        assert sandbox.version < cursor
        result = d.run("sync")
        assert result.returncode == 0 and "fetching every unit" in result.stderr, result.stderr
        assert read_nights(d.feed(unit)) == d.truth(unit)
        sandbox.add_reservation(unit, TODAY + dt.timedelta(days=60), TODAY + dt.timedelta(days=62))
        sandbox.reset_request_log()
        assert (r := d.run("sync")) and (r.returncode, r.stderr) == (0, "")
        assert read_nights(d.feed(unit)) == d.truth(unit)  # the new feed is followed from now on
        assert sandbox.request_count("GetReservationChanges") == 2  # the new change, then nothing


def test_a_steady_tick_reads_the_change_feed_once(deployment):
    assert deployment.run("sync").returncode == 0
    for _ in range(2):
        deployment.sandbox.reset_request_log()
        assert deployment.run("sync").returncode == 0
        assert deployment.sandbox.request_count("GetReservationChanges") == 1
        assert deployment.sandbox.request_count("GetReservationById") == 0


def test_a_damaged_changes_json_is_reported_and_rebuilt(deployment):
    assert deployment.run("sync").returncode == 0
    path = deployment.state / "accounts" / "sandbox" / "changes.json"
    write_state(path, {"cursor": "12", "units": 5, "reservations": [], "fetched": {"a": 1},
                       "pending": {"x": 1}, "at_cursor": "x", "listed_at": 3})
    result = deployment.run("sync")
    assert result.returncode == 0
    assert result.stderr == (f"escapia-ical: warning: state {describe(path)}: ignoring cursor, at_cursor, "
                             "units, listed_at, reservations, fetched, pending (wrong shape); it is rebuilt\n")
    assert isinstance(read_state(path)["cursor"], int)
    assert (again := deployment.run("sync")) and (again.returncode, again.stderr) == (0, "")
    assert_all_true(deployment)


def test_state_of_another_escapia_account_is_not_taken_for_this_ones(deployment):
    write_config(deployment.config, account_yaml("escapianet-batch"))
    assert deployment.run("sync").returncode == 0
    write_config(deployment.config, account_yaml("hsapi"))  # the same name, another source
    result = deployment.run("sync")
    assert result.returncode == 0
    assert result.stderr.startswith("escapia-ical: warning: sandbox: the state in ")
    assert "belongs to another Escapia account" in result.stderr and result.stderr.count("\n") == 1
    assert (again := deployment.run("sync")) and (again.returncode, again.stderr) == (0, "")
    assert_all_true(deployment)


def test_sync_unit_always_fetches_that_unit(deployment):
    """`sync --unit X -v` is what a person types to see X now: incremental mode fetches X even
    when the change feed says nothing about it, and -v says why in plain words."""
    assert deployment.run("sync").returncode == 0
    deployment.sandbox.reset_request_log()
    result = deployment.run("sync", "--unit", "1020-103", "-v")
    assert result.returncode == 0, result.stderr
    asked = [r for r in deployment.sandbox.requests if r["op"] == "GetUnitNonAvailability"]
    assert [r.get("unit") for r in asked] == ["1020-103"]
    assert "fetching 1 of 1 units: 1 asked for (--unit); the others keep their stored calendar" in result.stderr


def test_many_units_vanishing_at_once_are_kept_until_accepted(deployment):
    """A listing that suddenly lacks most units is more likely partial than true: those
    units are not retired (their feeds stay, each an error, exit 1) until `accept`."""
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    units = sandbox.unit_ids()
    for unit in units[:5]:
        hide(sandbox, unit)
    kept = {u: deployment.feed(u).read_bytes() for u in units[:5]}
    for _ in range(2):
        result = deployment.run("sync", "--full")
        assert result.returncode == 1
        assert result.stderr.count("missing from Escapia's unit list, with 4 other published units") == 5
    status = deployment.run("status")  # errors, not retired: stale (alerting) after --max-age
    assert "retired since" not in status.stdout and status.stdout.count("missing from Escapia's unit list") == 5
    assert all(deployment.feed(u).read_bytes() == kept[u] for u in kept)
    assert deployment.run("accept", "--account", "sandbox").returncode == 0
    assert deployment.run("sync", "--full").returncode == 0
    status = deployment.run("status")
    assert status.returncode == 0 and status.stdout.count("retired since") == 5, status.stdout


def test_a_configured_unit_escapia_stops_listing_stays_an_error_not_retired(deployment):
    sandbox = deployment.sandbox
    first, second = sandbox.unit_ids()[:2]
    write_config(deployment.config, account_yaml(units=f'["{first}", "{second}"]'))
    assert deployment.run("sync").returncode == 0
    hide(sandbox, second)
    result = deployment.run("sync", "--full")
    assert result.returncode == 1 and "configured unit is not distributed by Escapia" in result.stderr
    status = deployment.run("status")
    assert "retired" not in status.stdout and "configured unit is not distributed" in status.stdout
    assert "prune" not in deployment.run("prune", "--dry-run").stdout
    assert deployment.run("prune", "--now").stdout == "" and deployment.feed(second).exists()
