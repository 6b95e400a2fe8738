"""The kind index of HSAPI accounts against the sandbox: what labels blocked nights, what
it costs (one account-wide SearchReservationSummaries per reconcile period, only with
kinds_wanted), and what a refresh may and may not change."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import sqlite3
from pathlib import Path

import pytest

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import SourceError
from escapia_ical.feeds import kinds, spans
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PMCID, Sandbox
from escapia_ical.sandbox import hsapi as sandbox_hsapi
from escapia_ical.sources.hsapi import HsapiSource
from escapia_ical.sources.hsapi_decode import Reservation, parse_reservation, parse_reservation_page
from escapia_ical.sources.hsapi_index import INDEX_PAGE_SIZE, search_reservation_index
from escapia_ical.state import AccountState, read_state, write_state
from escapia_ical.sync.change_state import checked
from escapia_ical.sync.incremental import ChangeTracker, Plan

TODAY = dt.date(2026, 11, 30)
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
WINDOW = FeedWindow.around(TODAY, 7, 730)
HOUR = dt.timedelta(hours=1)
REFRESH = "SearchReservationSummaries"
EXTRACT = Path("/work/shared/escapia/hsapi-openapi-extract.json")


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


@pytest.fixture
def sb():
    with Sandbox(today=TODAY, max_page_size=INDEX_PAGE_SIZE) as sandbox:
        yield sandbox


def account(sb: Sandbox, **settings) -> HsapiAccount:
    return HsapiAccount(name="a", pmcid=SANDBOX_PMCID, client_id=SANDBOX_CLIENT_ID,
                        client_secret=SANDBOX_CLIENT_SECRET, base_url=sb.base_url, **settings)


def tick(sb: Sandbox, state, now: dt.datetime, calls: list | None = None, **settings) -> tuple[Plan, list[str]]:
    """One run's plan and commit (a new tracker and source, as a run makes them); return the
    plan and the operations it sent. ``calls`` collects (operation, JSON body) if given."""
    acct = account(sb, **settings)
    source = HsapiSource(acct, state, sleep=lambda _: None)
    if calls is not None:
        real = source._call

        def call(method, operation, **kwargs):
            calls.append((operation, kwargs.get("json")))
            return real(method, operation, **kwargs)

        source._call = call
    tracker = ChangeTracker(acct, AccountState(state, "a"))
    sb.reset_request_log()
    plan = tracker.plan(source, now, window=WINDOW)
    tracker.commit(plan, plan.fetch, now)
    return plan, [r["op"] for r in sb.requests]


def changes_path(state: Path) -> Path:
    """Names the change-feed document (accounts/a/changes of state/state.db)."""
    return state / "accounts" / "a" / "changes.json"


def saved(state: Path) -> dict:
    data = read_state(changes_path(state))
    assert isinstance(data, dict)
    return data


def stays_in_window(sb: Sandbox) -> dict[str, tuple]:
    """Every active stay and hold of the sandbox with a night in the window: id -> (unit, start, end, holdType)."""
    return {r["id"]: (unit, dt.date.fromisoformat(r["start"]), dt.date.fromisoformat(r["end"]), r["holdType"])
            for unit in sb.unit_ids() for r in sb.reservations(unit)
            if dt.date.fromisoformat(r["start"]) < WINDOW.end and dt.date.fromisoformat(r["end"]) > WINDOW.start}


def hide(sb: Sandbox, reservation_id: str):
    """Leave a stay out of SearchReservationSummaries (a glitchy search) until the returned
    function is called."""
    real = sb.data.search_reservations
    sb.data.search_reservations = lambda *a, **k: [r for r in real(*a, **k) if r.id != reservation_id]
    return lambda: setattr(sb.data, "search_reservations", real)


# -- decoding ---------------------------------------------------------------------------

HOLD_TYPE_KINDS = [("None", "reservation"), ("Owner", "owner"), ("GuestOfOwner", "owner"),
                   ("Maintenance", "maintenance"), ("SoftBlock", "hold"), ("GroupSoftBlock", "hold"),
                   ("Unavailable", "hold"), (None, "reservation"), ("SomethingNew", "hold")]


@pytest.mark.parametrize(("hold_type", "kind"), HOLD_TYPE_KINDS)
def test_every_hold_type_has_its_kind_in_lookups_and_summaries(hold_type, kind):
    stay = {"stayDateRange": {"startDate": "2027-01-05", "endDate": "2027-01-09"}, "unitNativePMSID": "U1",
            "holdType": hold_type, "status": "Confirmed", "nativePMSID": "R1"}
    assert parse_reservation(stay, "R1") == Reservation("U1", dt.date(2027, 1, 5), dt.date(2027, 1, 9), False,
                                                        kind, "R1")
    (found,), total = parse_reservation_page({"results": [stay], "totalCount": 1})
    assert (found.kind, found.id, total) == (kind, "R1", 1)


def test_every_contract_hold_type_is_covered():
    enum = json.loads(EXTRACT.read_text())["components"]["schemas"]["ReservationSummary"]["properties"]["holdType"]["enum"]
    assert set(enum) <= {h for h, _ in HOLD_TYPE_KINDS}


def test_a_summary_keeps_its_id_unit_dates_and_kind_only(sb):
    """No guest, amount or reservation number ever reaches the index."""
    assert {f.name for f in dataclasses.fields(Reservation)} == {"unit", "start", "end", "cancelled", "kind", "id"}


# -- the walk ---------------------------------------------------------------------------

def summary(i: int) -> dict:
    return {"nativePMSID": f"R{i}", "unitNativePMSID": "U1", "holdType": "Owner",
            "stayDateRange": {"startDate": "2027-01-05", "endDate": "2027-01-09"}}


@pytest.mark.parametrize("second_page", [[], [summary(1)]])
def test_a_walk_that_ends_before_its_total_count_is_an_error(second_page):
    """An empty page before totalCount, or one that only repeats: the stays past the cut would look cancelled."""
    def call(method, op, json=None, **_):
        return {"results": [summary(1), summary(2)] if json["pageNumber"] == 1 else second_page, "totalCount": 5}

    with pytest.raises(SourceError, match="SearchReservationSummaries: page 2"):
        search_reservation_index(call, lambda: None, WINDOW)


def test_the_walk_goes_on_until_total_count_and_checks_the_deadline_between_pages():
    checks = []

    def call(method, op, json=None, **_):
        page = json["pageNumber"]
        return {"results": [summary(2 * page - 1), summary(2 * page)] if page <= 3 else [], "totalCount": 6}

    found, unusable = search_reservation_index(call, lambda: checks.append(1), WINDOW)
    assert sorted(found) == [f"R{i}" for i in range(1, 7)] and unusable == 0 and len(checks) == 2


# -- what a refresh costs ---------------------------------------------------------------

def test_the_refresh_is_one_request_for_the_whole_account_with_a_big_page(sb, tmp_path):
    calls: list = []
    plan, ops = tick(sb, tmp_path, NOW, calls, kinds_wanted=True)
    assert ops.count(REFRESH) == 1
    ((_, body),) = [c for c in calls if c[0] == REFRESH]
    spec = body["specification"]
    assert "unitNativePMSIDs" not in spec and body["pageSize"] == INDEX_PAGE_SIZE and body["pageNumber"] == 1
    assert spec["stayDateRangeSearchSpecification"] == {
        "dateRange": {"startDate": WINDOW.start.isoformat(), "endDate": WINDOW.end.isoformat()},
        "dateRangeSearchMethod": "Overlap"}
    assert set(spec["holdTypes"]) == {"None", "Owner", "Maintenance", "SoftBlock", "GroupSoftBlock", "GuestOfOwner",
                                      "Unavailable"}
    expected = {r: (u, s, e, kinds.kind_of_hold_type(h)) for r, (u, s, e, h) in stays_in_window(sb).items()}
    assert plan.reservations == expected


def test_the_refresh_pages_until_total_count(tmp_path):
    with Sandbox(today=TODAY, max_page_size=7) as sb:
        plan, ops = tick(sb, tmp_path, NOW, kinds_wanted=True)
        assert ops.count(REFRESH) == math.ceil(len(stays_in_window(sb)) / 7) > 1
        assert set(plan.reservations) == set(stays_in_window(sb))


def test_the_refresh_comes_once_per_reconcile_period_and_only_with_kinds_wanted(sb, tmp_path):
    for wanted, expected in ((True, [1, 0, 0, 1, 0]), (False, [0, 0, 0, 0, 0])):
        state = tmp_path / str(wanted)
        counts = [tick(sb, state, NOW + offset, kinds_wanted=wanted)[1].count(REFRESH)
                  for offset in (dt.timedelta(0), 5 * HOUR / 60, 3 * HOUR, 6 * HOUR, 6 * HOUR + 5 * HOUR / 60)]
        assert counts == expected, wanted


def test_a_unit_new_in_the_listing_has_its_stays_indexed_at_once(sb, tmp_path):
    stay = sb.add_reservation("1020-105", day(2), day(4), "Owner")  # before the feed is followed
    real = sb.data.search_units
    sb.data.search_units = lambda *a, **k: [u for u in real(*a, **k) if u.id != "1020-105"]
    first, _ = tick(sb, tmp_path, NOW, kinds_wanted=True)
    assert stay not in first.reservations  # not a unit it publishes
    sb.data.search_units = real
    data = saved(tmp_path)
    data["listed_at"] = (NOW - 7 * HOUR).isoformat()  # the listing is due, the refresh is not
    write_state(changes_path(tmp_path), data)
    plan, ops = tick(sb, tmp_path, NOW + HOUR, kinds_wanted=True)
    assert "SearchUnitSummaries" in ops and ops.count(REFRESH) == 1 and "GetReservationById" not in ops
    assert plan.claims["1020-105"] == {"owner": [(day(2), day(4))]}
    assert tick(sb, tmp_path, NOW + 2 * HOUR, kinds_wanted=True)[1].count(REFRESH) == 0


def test_a_refresh_stamped_in_the_future_does_not_stop_the_refreshes(sb, tmp_path):
    tick(sb, tmp_path, NOW + 48 * HOUR, kinds_wanted=True)  # a clock that was ahead
    assert tick(sb, tmp_path, NOW, kinds_wanted=True)[1].count(REFRESH) == 1


def test_a_tick_sends_the_same_requests_with_or_without_kinds_when_no_refresh_is_due(sb, tmp_path):
    for wanted in (True, False):
        tick(sb, tmp_path / str(wanted), NOW, kinds_wanted=wanted)
    sb.add_reservation("1020-105", day(20), day(25), "Owner")
    later = NOW + 5 * HOUR / 60
    with_kinds, without = (tick(sb, tmp_path / str(wanted), later, kinds_wanted=wanted)[1] for wanted in (True, False))
    assert with_kinds == without and "GetReservationById" in with_kinds and REFRESH not in with_kinds


def test_a_full_sync_refreshes_whenever_it_comes(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    sb.restart_change_log()  # the cursor is rejected: a full sync
    sb.add_reservation("1020-105", day(20), day(25))
    assert tick(sb, tmp_path, NOW + HOUR, kinds_wanted=True)[1].count(REFRESH) == 1


# -- what a refresh may change ----------------------------------------------------------

@pytest.fixture
def cut_short(monkeypatch):
    """SearchReservationSummaries announces one stay more than it lists."""
    real = sandbox_hsapi.page

    def page(body, max_size, items, render):
        answer = real(body, max_size, items, render)
        return {**answer, "totalCount": answer["totalCount"] + 1} if render is sandbox_hsapi.reservation_summary \
            else answer

    monkeypatch.setattr(sandbox_hsapi, "page", page)


def test_a_refresh_cut_short_keeps_the_old_index_and_is_tried_again_an_hour_later(sb, tmp_path, caplog, request):
    first, _ = tick(sb, tmp_path, NOW, kinds_wanted=True)
    request.getfixturevalue("cut_short")
    plan, ops = tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)
    assert ops.count(REFRESH) == 2  # (the second page, empty, shows the cut)
    assert "kinds of blocks not refreshed" in caplog.text and "the list is incomplete" in caplog.text
    assert plan.reservations == first.reservations and saved(tmp_path)["kinds_refreshed_at"] == NOW.isoformat()
    assert tick(sb, tmp_path, NOW + 6 * HOUR + 5 * HOUR / 60, kinds_wanted=True)[1].count(REFRESH) == 0
    assert tick(sb, tmp_path, NOW + 7 * HOUR, kinds_wanted=True)[1].count(REFRESH) == 2


def test_a_refresh_refused_for_good_costs_a_request_an_hour_and_one_warning(sb, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    sb.inject("status", op="SearchReservationSummaries", status=403)
    counts = [tick(sb, tmp_path, NOW + 6 * HOUR + i * 5 * HOUR / 60, kinds_wanted=True)[1].count(REFRESH)
              for i in range(13)]
    assert counts == [1] + [0] * 11 + [1]  # at 6 h, then an hour later; not at every tick
    assert [r.levelname for r in caplog.records if "not refreshed" in r.getMessage()] == ["WARNING", "INFO"]


def test_a_failed_refresh_owed_for_a_new_unit_is_tried_again(sb, tmp_path, monkeypatch):
    stay = sb.add_reservation("1020-105", day(2), day(4), "Owner")
    real = sb.data.search_units
    sb.data.search_units = lambda *a, **k: [u for u in real(*a, **k) if u.id != "1020-105"]
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    sb.data.search_units = real
    data = saved(tmp_path)
    data["listed_at"] = (NOW - 7 * HOUR).isoformat()  # the listing is due, the refresh is not
    write_state(changes_path(tmp_path), data)
    real_page = sandbox_hsapi.page
    monkeypatch.setattr(sandbox_hsapi, "page", lambda body, size, items, render: (
        {**real_page(body, size, items, render), "totalCount": 10**6}
        if render is sandbox_hsapi.reservation_summary else real_page(body, size, items, render)))
    plan, ops = tick(sb, tmp_path, NOW + HOUR, kinds_wanted=True)  # owed for the new unit; fails
    assert REFRESH in ops and "1020-105" not in plan.claims and saved(tmp_path)["kinds_owed"]
    monkeypatch.setattr(sandbox_hsapi, "page", real_page)
    plan, ops = tick(sb, tmp_path, NOW + 2 * HOUR, kinds_wanted=True)  # the owed refresh, after the back-off
    assert ops.count(REFRESH) == 1 and plan.claims["1020-105"] == {"owner": [(day(2), day(4))]}
    assert stay in plan.reservations and not saved(tmp_path)["kinds_owed"]


def test_a_damaged_index_is_refreshed_at_once(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    data = saved(tmp_path)
    data["reservations"]["x"] = ["1020-101", day(1).isoformat(), day(2).isoformat(), "guests"]  # no such kind
    write_state(changes_path(tmp_path), data)
    assert tick(sb, tmp_path, NOW + 5 * HOUR / 60, kinds_wanted=True)[1].count(REFRESH) == 1


def test_a_stay_missing_from_one_refresh_is_kept_until_the_next_lacks_it_too(sb, tmp_path, caplog):
    caplog.set_level("INFO")
    stay = sb.add_reservation("1020-105", day(20), day(25), "Owner")
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    show = hide(sb, stay)
    plan, _ = tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)
    assert stay in plan.reservations and saved(tmp_path)["kinds_missed"] == [stay]
    assert "1 stay(s) with nights to come missing from the kinds refresh are kept" in caplog.text
    show()  # listed again: the miss is forgotten
    plan, _ = tick(sb, tmp_path, NOW + 12 * HOUR, kinds_wanted=True)
    assert stay in plan.reservations and saved(tmp_path)["kinds_missed"] == []
    hide(sb, stay)
    assert stay in tick(sb, tmp_path, NOW + 18 * HOUR, kinds_wanted=True)[0].reservations  # a first miss again
    plan, _ = tick(sb, tmp_path, NOW + 24 * HOUR, kinds_wanted=True)
    assert stay not in plan.reservations and "1020-105" not in plan.claims
    assert "1 stay(s) missing from two kinds refreshes in a row are forgotten" in caplog.text


def test_a_past_stay_a_refresh_no_longer_lists_is_dropped_at_once(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    past = next(r["id"] for r in sb.reservations("1020-101") if r["end"] == TODAY.isoformat())
    hide(sb, past)
    assert past not in tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)[0].reservations


def test_a_refresh_updates_dates_and_kinds_and_adds_stays_at_once(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    data = saved(tmp_path)
    owner = next(r["id"] for r in sb.reservations("1020/7B") if r["holdType"] == "Owner")
    data["reservations"][owner] = ["1020/7B", day(3).isoformat(), day(4).isoformat(), "reservation"]  # wrong
    del data["reservations"][next(iter(data["reservations"]))]
    write_state(changes_path(tmp_path), data)
    plan, _ = tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)
    truth = stays_in_window(sb)[owner]
    assert plan.reservations[owner] == ("1020/7B", truth[1], truth[2], "owner")
    assert set(plan.reservations) == set(stays_in_window(sb))


def test_stays_of_units_not_published_are_not_kept(sb, tmp_path):
    plan, _ = tick(sb, tmp_path, NOW, kinds_wanted=True, units=("1020-102",))
    assert {u for u, *_ in plan.reservations.values()} == {"1020-102"} and set(plan.claims) == {"1020-102"}


def test_stays_that_ended_before_the_window_are_forgotten(sb, tmp_path):
    tick(sb, tmp_path, NOW)
    data = saved(tmp_path)
    data["reservations"]["old"] = ["1020-101", day(-40).isoformat(), WINDOW.start.isoformat(), "reservation"]
    data["reservations"]["edge"] = ["1020-101", day(-40).isoformat(), day(-6).isoformat(), "owner"]
    write_state(changes_path(tmp_path), data)
    plan, _ = tick(sb, tmp_path, NOW + 5 * HOUR / 60)
    assert "old" not in plan.reservations and "edge" in plan.reservations


# -- lookups, work orders, claims --------------------------------------------------------

def test_lookups_record_kinds_without_a_refresh(sb, tmp_path):
    tick(sb, tmp_path, NOW)
    hold = sb.add_reservation("1020-105", day(20), day(25), "SoftBlock")
    plan, ops = tick(sb, tmp_path, NOW + 5 * HOUR / 60)
    assert REFRESH not in ops and plan.reservations[hold] == ("1020-105", day(20), day(25), "hold")
    # (The change at the cursor is looked up again too: the index learns its unit's kinds as well.)
    assert plan.claims["1020-105"] == {"hold": [(day(20), day(25))]}
    assert saved(tmp_path)["reservations"][hold] == ["1020-105", day(20).isoformat(), day(25).isoformat(), "hold"]


def test_a_cancellation_shown_by_the_change_feed_removes_the_claim(sb, tmp_path):
    stay = sb.add_reservation("1020-105", day(20), day(25), "Owner")
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    sb.cancel_reservation(stay)
    plan, _ = tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)  # a refresh and the lookup, same tick
    assert stay not in plan.reservations and "1020-105" not in plan.claims


def test_work_orders_that_remove_their_unit_are_maintenance_claims(sb, tmp_path):
    plan, _ = tick(sb, tmp_path, NOW)
    maintenance = plan.claims["1020-102"]["maintenance"]
    assert spans.intersect(maintenance, [(day(250), day(254))]) == [(day(250), day(254))]  # the work order
    assert not spans.intersect(maintenance, [(day(260), day(263))])  # the completed one
    order = sb.add_work_order("1020-105", day(40), day(41))
    plan, _ = tick(sb, tmp_path, NOW + 5 * HOUR / 60)
    assert plan.claims["1020-105"] == {"maintenance": [(day(40), day(42))]}
    sb.complete_work_order(order)
    plan, _ = tick(sb, tmp_path, NOW + 10 * HOUR / 60)
    assert "1020-105" not in plan.claims


def test_a_quiet_tick_changes_no_claims(sb, tmp_path):
    first, _ = tick(sb, tmp_path, NOW, kinds_wanted=True)
    plan, _ = tick(sb, tmp_path, NOW + 6 * HOUR, kinds_wanted=True)
    assert plan.claims and plan.claims == first.claims


def test_claims_label_every_blocked_night_as_the_sandbox_knows_it(sb, tmp_path):
    sb.add_reservation("1020-105", day(3), day(6), "GuestOfOwner")
    sb.add_reservation("1020-105", day(8), day(9), "Unavailable")
    sb.add_reservation("1020-105", day(9), day(11), "GroupSoftBlock")
    sb.block_contract("1020-105", day(14), day(21))  # neither a stay nor a work order: 'other'
    plan, _ = tick(sb, tmp_path, NOW, kinds_wanted=True)
    source = HsapiSource(account(sb), tmp_path, sleep=lambda _: None)
    for unit_id in sb.unit_ids():
        calendar = source.calendar(Unit(unit_id, unit_id), WINDOW)
        blocked = spans.clip([(r.start, r.end) for r in calendar.ranges], WINDOW.start, WINDOW.end)
        labels = kinds.label(blocked, plan.claims.get(unit_id, {}))
        found = {kind: {s + dt.timedelta(days=i) for s, e in nights for i in range((e - s).days)}
                 for kind, nights in labels.items()}
        assert found == sb.blocked_nights_by_kind(unit_id, WINDOW.start, WINDOW.end), unit_id
    assert sb.blocked_nights_by_kind("1020-105", WINDOW.start, WINDOW.end)["other"] == {
        day(i) for i in range(14, 21)}


def test_state_keeps_no_guest_data(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    assert saved(tmp_path)["reservations"]
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as con:  # every row of every document
        text = "\n".join(key + body for key, body in con.execute("SELECT key, body FROM documents"))
    assert "@" not in text and "example.com" not in text and "total" not in text


# -- state written before kinds ---------------------------------------------------------

def test_old_three_element_stays_read_as_reservations_never_refreshed(tmp_path):
    data = checked({"reservations": {"r1": ["u1", "2027-01-05", "2027-01-09"],
                                     "r2": ["u1", "2027-02-01", "2027-02-03", "owner"], "r3": "u2"},
                    "kinds_refreshed_at": NOW.isoformat()}, "changes.json")
    assert data["reservations"] == {"r1": ("u1", dt.date(2027, 1, 5), dt.date(2027, 1, 9), "reservation"),
                                    "r2": ("u1", dt.date(2027, 2, 1), dt.date(2027, 2, 3), "owner"),
                                    "r3": ("u2", None, None, "reservation")}
    assert data["kinds_refreshed_at"] is None


def test_a_stay_of_an_unknown_kind_is_the_wrong_shape(caplog):
    data = checked({"reservations": {"r1": ["u1", "2027-01-05", "2027-01-09", "guest"]}}, "changes.json")
    assert data["reservations"] == {} and "ignoring reservations" in caplog.text


def test_an_old_state_is_refreshed_at_the_next_tick(sb, tmp_path):
    tick(sb, tmp_path, NOW, kinds_wanted=True)
    data = saved(tmp_path)
    data["reservations"] = {r: s[:3] for r, s in data["reservations"].items()}
    write_state(changes_path(tmp_path), data)
    plan, ops = tick(sb, tmp_path, NOW + 5 * HOUR / 60, kinds_wanted=True)
    assert ops.count(REFRESH) == 1 and plan.claims["1020/7B"].get("owner")
