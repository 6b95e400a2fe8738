"""Write-back against the real CLI: an unsynced channel booking blocked in Escapia (the
sandbox) by one work order, moved with the booking, closed only once its removal is
confirmed (imports/writeback.py)."""

from __future__ import annotations

import datetime as dt

from conftest import account_yaml, write_config
from feeds import read_nights

from escapia_ical.state import read_state, write_state

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)
UNIT = "1020-105"  # no reservations


def _configure(deployment, writes: int = 20, block: bool = True) -> None:
    write_config(deployment.config, account_yaml(extra=f"""\
    imports:
      block_in_escapia: {str(block).lower()}
      max_writes_per_run: {writes}
      units:
        "{UNIT}":
          - {{channel: airbnb, url: "${{SANDBOX_URL}}/_channels/airbnb-105.ics"}}
"""))


def _export(deployment, *stays: tuple[int, int, str], **more) -> None:
    events = [{"start": str(TODAY + a * DAY), "end": str(TODAY + b * DAY), "uid": uid} for a, b, uid in stays]
    deployment.sandbox.channels.put("airbnb-105", {"shape": "airbnb", "events": events, **more})


def _orders(deployment) -> list[dict]:
    return [o for o in deployment.sandbox.work_orders(UNIT) if o["status"] != "Completed"]


def _book(deployment) -> dict:
    return read_state(deployment.state / "accounts" / "sandbox" / "imports.json")


def _age(deployment, minutes: int = 60) -> None:
    """As if every export was last read, and every missing booking first missed, ``minutes`` ago."""
    path = deployment.state / "accounts" / "sandbox" / "imports.json"
    data = read_state(path)
    back = dt.timedelta(minutes=minutes)
    for record in data["feeds"].values():
        record["fetched"] = (dt.datetime.fromisoformat(record["fetched"]) - back).isoformat(timespec="seconds")
    for write in data["writes"].values():
        if write.get("missing_since"):
            write["missing_since"] = (dt.datetime.fromisoformat(write["missing_since"]) - back).isoformat()
    write_state(path, data)


def test_an_unsynced_booking_is_blocked_by_one_work_order_that_follows_it_and_closes_when_confirmed(deployment):
    _configure(deployment)
    _export(deployment, (10, 13, "stay-1@airbnb.com"))
    first = deployment.run("sync")
    assert first.returncode == 1 and "Escapia shows 3 of its nights free" in first.stderr, first.stderr
    [order] = _orders(deployment)
    assert (order["removes"], order["start"]) == (True, str(TODAY + 10 * DAY))
    assert "blocked in Escapia by work order" in first.stderr
    description = deployment.sandbox.data.work_orders[order["id"]].description
    assert description.startswith("escapia-ical: airbnb booking ") and "stay-1" not in description

    # The next tick sees the work order: the feed blocks the nights, the conflict closes.
    second = deployment.run("sync", "-v")
    assert second.returncode == 0, second.stderr
    assert {TODAY + d * DAY for d in (10, 11, 12)} <= read_nights(deployment.feed(UNIT))
    assert "resolved" in second.stderr
    assert _book(deployment)["conflicts"] == {}
    _age(deployment)
    assert deployment.run("sync").returncode == 0
    assert len(_orders(deployment)) == 1  # never a second one

    # The guest moves the stay (same UID): the same work order moves.
    _export(deployment, (20, 24, "stay-1@airbnb.com"))
    _age(deployment)
    moved = deployment.run("sync")
    [again] = _orders(deployment)
    assert again["id"] == order["id"] and again["start"] == str(TODAY + 20 * DAY), moved.stderr
    assert "moved" in moved.stderr

    # Cancelled on Airbnb (another booking stays): closed only after two reads at least 15
    # minutes apart.
    _export(deployment, (40, 41, "stay-2@airbnb.com"))
    _age(deployment)
    deployment.run("sync")
    assert order["id"] in {o["id"] for o in _orders(deployment)}  # one read without it: not yet
    _age(deployment, 20)
    closed = deployment.run("sync")
    assert order["id"] not in {o["id"] for o in _orders(deployment)}, closed.stderr
    assert f"closed work order {order['id']}" in closed.stderr
    assert [w["start"] for w in _book(deployment)["writes"].values()] == [str(TODAY + 40 * DAY)]


def test_a_failing_or_emptied_export_releases_nothing(deployment):
    _configure(deployment)
    _export(deployment, (10, 13, "a@airbnb.com"))
    deployment.run("sync")
    assert len(_orders(deployment)) == 1
    for broken in ({"status": 503}, {"body": "<html>oops</html>"}):
        _export(deployment, (10, 13, "a@airbnb.com"), **broken)
        for _ in range(3):
            _age(deployment)
            deployment.run("sync")
        assert len(_orders(deployment)) == 1
    _export(deployment)  # suddenly empty: 24 hours before it releases anything
    for _ in range(3):
        _age(deployment)
        deployment.run("sync")
    assert len(_orders(deployment)) == 1
    _age(deployment, 25 * 60)
    deployment.run("sync")
    assert _orders(deployment) == []


def test_the_write_cap_and_dry_run(deployment):
    _configure(deployment, block=False)
    _export(deployment, (10, 12, "a@x"), (20, 22, "b@x"), (30, 32, "c@x"))
    assert deployment.run("sync").returncode == 1  # reported, not written
    _configure(deployment, writes=1)
    dry = deployment.run("sync", "--dry-run")
    # What a real run would do, within the same cap.
    assert _orders(deployment) == [] and dry.stderr.count("dry run: would block the airbnb booking") == 1, dry.stderr
    assert "2 more wait for the next run" in dry.stderr
    first = deployment.run("sync")
    assert len(_orders(deployment)) == 1
    assert "1 work order change(s) this run, the most imports.max_writes_per_run allows; 2 more wait" in first.stderr
    deployment.run("sync")
    deployment.run("sync")
    assert sorted(o["start"] for o in _orders(deployment)) == [str(TODAY + d * DAY) for d in (10, 20, 30)]


def test_without_the_grant_write_back_turns_off_in_one_line_and_conflicts_are_still_reported(deployment):
    _configure(deployment)
    deployment.sandbox.work_orders_granted = False
    _export(deployment, (10, 13, "a@x"))
    first = deployment.run("sync")
    assert first.returncode == 1
    lines = [line for line in first.stderr.splitlines() if "SaveWorkOrder" in line]
    assert len(lines) == 1 and "write-back is off" in lines[0], first.stderr
    assert "Escapia shows 3 of its nights free" in first.stderr
    again = deployment.run("sync")
    assert "SaveWorkOrder" not in again.stderr  # said once; the status keeps it
    status = deployment.run("status")
    assert "write-back is off" in status.stdout


def test_write_back_is_off_by_default(deployment):
    _configure(deployment, block=False)
    _export(deployment, (10, 13, "a@x"))
    assert deployment.run("sync").returncode == 1
    assert _orders(deployment) == [] and deployment.sandbox.request_count("SaveWorkOrder") == 0


def test_a_work_order_closed_in_escapia_behind_our_back_is_saved_again(deployment):
    _configure(deployment)
    _export(deployment, (10, 13, "a@x"))
    deployment.run("sync")
    [order] = _orders(deployment)
    assert deployment.run("sync").returncode == 0  # in force: no conflict
    deployment.sandbox.complete_work_order(order["id"])  # someone closes it in Escapia
    again = deployment.run("sync")
    assert again.returncode == 1 and "Escapia shows 3 of its nights free" in again.stderr, again.stderr
    assert _orders(deployment) == []  # not at once: a new work order takes a tick to show
    path = deployment.state / "accounts" / "sandbox" / "imports.json"
    data = read_state(path)
    for write in data["writes"].values():
        write["saved"] = (dt.datetime.fromisoformat(write["saved"]) - dt.timedelta(hours=3)).isoformat()
    write_state(path, data)
    repaired = deployment.run("sync")
    assert [o["id"] for o in _orders(deployment)] == [order["id"]], repaired.stderr
    assert "saved again" in repaired.stderr
    assert deployment.run("sync").returncode == 0 and _book(deployment)["conflicts"] == {}


def test_a_lost_answer_to_a_create_is_found_again_not_created_twice(deployment):
    _configure(deployment)
    _export(deployment, (10, 13, "a@x"))
    deployment.sandbox.inject("reset", op="SaveWorkOrder", times=1)  # saved, but the answer is lost
    first = deployment.run("sync")
    assert "could not block the airbnb booking" in first.stderr, first.stderr
    assert len(_orders(deployment)) == 1 and deployment.sandbox.request_count("SaveWorkOrder") == 1  # never retried
    second = deployment.run("sync", "-v")
    assert "is ours (its description says so): taken back" in second.stderr, second.stderr
    assert len(_orders(deployment)) == 1 and deployment.sandbox.request_count("SaveWorkOrder") == 1
    assert second.returncode == 0 and _book(deployment)["conflicts"] == {}


def test_work_orders_left_behind_are_named_in_the_status(deployment):
    _configure(deployment)
    _export(deployment, (10, 13, "a@x"))
    deployment.run("sync")
    [order] = _orders(deployment)
    write_config(deployment.config, account_yaml())  # imports removed from the config
    deployment.run("sync")
    status = deployment.run("status")
    assert f"no longer manages (their export or block_in_escapia left the config): {order['id']}" in status.stdout
    assert len(_orders(deployment)) == 1  # never closed blindly
