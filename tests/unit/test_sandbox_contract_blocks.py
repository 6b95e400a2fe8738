"""The sandbox's effective contract dates (invented shape) and its ground truth by kind."""

from __future__ import annotations

import datetime as dt

import pytest

from escapia_ical.sandbox import Sandbox
from escapia_ical.sandbox import hsapi as sandbox_hsapi
from escapia_ical.sandbox.escapianet import daily_availability

TODAY = dt.date(2026, 12, 30)
DAY = dt.timedelta(days=1)
UNIT = "1020-105"  # no reservations at all


@pytest.fixture
def sb():
    with Sandbox(today=TODAY) as sandbox:
        yield sandbox


def test_a_contract_block_shows_in_non_availability_and_calendars_only(sb):
    version = sb.version
    block = sb.block_contract(UNIT, TODAY + 3 * DAY, TODAY + 6 * DAY)
    items = sandbox_hsapi.get_unit_non_availability(sb, {
        "dateRange": {"startDate": TODAY.isoformat(), "endDate": (TODAY + 30 * DAY).isoformat()},
        "nativePMSUnitID": UNIT}, {})
    assert items == [{"dateRange": {"startDate": (TODAY + 3 * DAY).isoformat(),
                                    "endDate": (TODAY + 6 * DAY).isoformat()}}]
    assert daily_availability(sb, UNIT, TODAY, TODAY + 8 * DAY, None) == "AAAUUUAA"  # nobody arrives or leaves
    assert sb.version == version  # not in the change feed
    assert sb.data.search_reservations([UNIT], None) == [] and sb.work_orders(UNIT) == []
    assert sb.blocked_nights(UNIT, TODAY, TODAY + 30 * DAY) == {TODAY + i * DAY for i in (3, 4, 5)}
    sb.unblock_contract(block)
    assert not sb.blocked_nights(UNIT, TODAY, TODAY + 30 * DAY)
    assert sb.block_contract(UNIT, TODAY, TODAY + DAY) != block  # ids are never reused
    with pytest.raises(ValueError, match="must be after"):
        sb.block_contract(UNIT, TODAY, TODAY)


def test_blocked_nights_by_kind_follows_hold_types_work_orders_and_contracts(sb):
    nights = {TODAY + i * DAY for i in range(1, 3)}
    for hold, day in (("None", 1), ("Owner", 3), ("GuestOfOwner", 5), ("Maintenance", 7), ("SoftBlock", 9),
                      ("GroupSoftBlock", 11), ("Unavailable", 13)):
        sb.add_reservation(UNIT, TODAY + day * DAY, TODAY + (day + 2) * DAY, hold)
    sb.add_work_order(UNIT, TODAY + 2 * DAY, TODAY + 2 * DAY)  # the last night, inclusive; on a stay's night
    sb.block_contract(UNIT, TODAY + 20 * DAY, TODAY + 21 * DAY)
    found = sb.blocked_nights_by_kind(UNIT, TODAY, TODAY + 30 * DAY)
    assert found["reservation"] == nights
    assert found["owner"] == {TODAY + i * DAY for i in range(3, 7)}
    assert found["maintenance"] == {TODAY + i * DAY for i in (2, 7, 8)}
    assert found["hold"] == {TODAY + i * DAY for i in range(9, 15)}
    assert found["other"] == {TODAY + 20 * DAY}
    assert set().union(*found.values()) == sb.blocked_nights(UNIT, TODAY, TODAY + 30 * DAY)
    assert sb.blocked_nights_by_kind(UNIT, TODAY + 25 * DAY, TODAY + 30 * DAY) == {}


def test_control_api_blocks_contract_dates_and_tells_the_kinds(sb, http):
    base = f"{sb.base_url}/_sandbox"
    r = http.post(f"{base}/contract_blocks", json={"unit": UNIT, "start": "2027-02-01", "end": "2027-02-03"})
    assert r.status_code == 201
    truth = http.get(f"{base}/truth", params={"unit": UNIT, "start": "2027-01-01", "end": "2027-03-01"}).json()
    assert truth["kinds"] == {"other": ["2027-02-01", "2027-02-02"]} and truth["nights"] == truth["kinds"]["other"]
    assert http.delete(f"{base}/contract_blocks/{r.json()['id']}").status_code == 200
    assert http.delete(f"{base}/contract_blocks/{r.json()['id']}").status_code == 404
    assert http.post(f"{base}/contract_blocks", json={"unit": UNIT, "start": "2027-02-03",
                                                      "end": "2027-02-03"}).status_code == 400
