"""The change-feed planner against a scripted feed: the cursor, what is skipped, what is
evidence for the publish policy."""

from __future__ import annotations

import datetime as dt

import pytest

from escapia_ical.config import HsapiAccount
from escapia_ical.model import Unit
from escapia_ical.sources.hsapi import CursorRejected
from escapia_ical.sources.hsapi_decode import Change, Reservation
from escapia_ical.sources.hsapi_work_orders import WorkOrder, WorkOrdersForbidden
from escapia_ical.state import AccountState, read_state
from escapia_ical.sync.incremental import ChangeTracker

D = dt.date
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
UNITS = [Unit("u1", "One"), Unit("u2", "Two")]


class Feed:
    """GetReservationChanges over a list of (version, Change), ``page`` changes per call
    (collapsed per reservation like Escapia's), and GetReservationById from a dict."""

    def __init__(self, changes: list[Change], reservations: dict[str, Reservation], page: int = 100):
        self.log = list(enumerate(changes, start=1))
        self.reservations, self.page = reservations, page
        self.largest_change_page = 0
        self.calls: list[str] = []

    def list_units(self):
        return UNITS

    def recent_version(self, deadline=None):
        return max(len(self.log) - 1, 0)

    def changes_since(self, version, deadline=None, *, known_end=None):
        self.calls.append(f"changes {version}")
        if version > len(self.log):
            raise CursorRejected(f"refused {version}")
        read, start = [], version
        while True:
            latest: dict[str, Change] = {}
            end = start
            for number, change in self.log[start:]:
                if change.reservation not in latest and len(latest) == self.page:
                    break
                latest.pop(change.reservation, None)
                latest[change.reservation] = change
                end = number
            page = list(latest.values())
            self.largest_change_page = max(self.largest_change_page, len(page))
            read += page
            if not page or end in (start, known_end):
                return read, end
            start = end

    def reservation(self, reservation_id):
        self.calls.append(f"lookup {reservation_id}")
        return self.reservations.get(reservation_id)

    work_orders: dict[str, WorkOrder] | None = None  # every work order (None: 403)

    def open_work_orders(self, today, deadline=None):
        self.calls.append("work orders")
        if self.work_orders is None:
            raise WorkOrdersForbidden("SearchWorkOrders is not granted to this partner (HTTP 403)")
        return {i: w for i, w in self.work_orders.items() if w.open}

    def work_order(self, order_id):
        self.calls.append(f"work order {order_id}")
        return (self.work_orders or {}).get(order_id)


def tracker(tmp_path) -> ChangeTracker:
    account = HsapiAccount(name="a", pmcid="1", client_id="i", client_secret="s")
    return ChangeTracker(account, AccountState(tmp_path, "a"))


def settle(tmp_path, feed: Feed) -> ChangeTracker:
    """A first (full) run, committed: the tracker of the next run."""
    first = tracker(tmp_path)
    first.commit(first.plan(feed, NOW), {"u1", "u2"}, NOW)
    return tracker(tmp_path)


def stay(unit, start, end, cancelled=False):
    return Reservation(unit, D(2027, 1, start), D(2027, 1, end), cancelled)


def test_a_steady_tick_reads_one_page_and_looks_nothing_up(tmp_path):
    feed = Feed([Change("r1", "Create", "t1"), Change("r2", "Create", "t2")], {})
    plan = settle(tmp_path, feed).plan(feed, NOW + dt.timedelta(minutes=5))
    assert feed.calls[-1:] == ["changes 1"] and not plan.freed
    assert not [c for c in feed.calls if c.startswith("lookup")]


def test_the_same_reservation_changed_again_in_the_same_second_is_not_skipped(tmp_path):
    feed = Feed([Change("r1", "Create", "t1"), Change("r2", "Update", "t2")],
                {"r2": stay("u1", 5, 9)})
    next_run = settle(tmp_path, feed)
    feed.log.append((3, Change("r2", "Update", "t2")))  # collapsed forward, same time
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert "lookup r2" in feed.calls and "u1" in plan.fetch


def test_a_reset_that_passed_the_cursor_is_noticed(tmp_path):
    feed = Feed([Change(f"r{i}", "Create", f"t{i}") for i in range(1, 11)], {})
    next_run = settle(tmp_path, feed)
    feed.log = list(enumerate([Change(f"n{i}", "Create", f"s{i}") for i in range(1, 13)], start=1))
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert plan.reasons == {"full": 2}  # every unit, and the feed followed from its new end


def test_a_feed_of_one_change_per_page_never_stalls(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {"r2": stay("u2", 1, 3)}, page=1)
    next_run = settle(tmp_path, feed)
    feed.log.append((2, Change("r2", "Create", "t2")))
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert plan.cursor == 2 and "u2" in plan.fetch


@pytest.mark.parametrize(("before", "now", "freed"), [
    (stay("u1", 5, 9), stay("u1", 5, 9, cancelled=True), {"u1": [(D(2027, 1, 5), D(2027, 1, 9))]}),
    (stay("u1", 5, 9), stay("u1", 5, 7), {"u1": [(D(2027, 1, 7), D(2027, 1, 9))]}),  # shortened
    (stay("u1", 5, 9), stay("u2", 5, 9), {"u1": [(D(2027, 1, 5), D(2027, 1, 9))]}),  # moved
    (stay("u1", 5, 9), None, {}),  # Escapia no longer finds it: that shows nothing
])
def test_what_the_change_feed_shows_freed(tmp_path, before, now, freed):
    feed = Feed([Change("r1", "Create", "t1")], {"r1": before})
    next_run = settle(tmp_path, feed)
    next_run.data["reservations"]["r1"] = (before.unit, before.start, before.end, before.kind)
    feed.reservations["r1"] = now
    feed.log.append((2, Change("r1", "Update", "t2")))
    assert next_run.plan(feed, NOW + dt.timedelta(minutes=5)).freed == freed


def test_a_night_another_known_stay_books_is_not_shown_freed(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {})
    next_run = settle(tmp_path, feed)
    next_run.data["reservations"].update({"r1": ("u1", D(2027, 1, 5), D(2027, 1, 9), "reservation"),
                                          "r9": ("u1", D(2027, 1, 7), D(2027, 1, 12), "reservation")})
    feed.reservations["r1"] = stay("u1", 5, 9, cancelled=True)
    feed.log.append((2, Change("r1", "Delete", "t2")))
    assert next_run.plan(feed, NOW + dt.timedelta(minutes=5)).freed == {"u1": [(D(2027, 1, 5), D(2027, 1, 7))]}


def order(unit="u1", start=5, end=8, status="Scheduled", removes=True, order_id="w1"):
    return WorkOrder(order_id, unit, removes, D(2027, 1, start), D(2027, 1, end), status)


def test_a_steady_tick_with_work_orders_reads_one_page_of_them(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {})
    feed.work_orders = {"w1": order()}
    plan = settle(tmp_path, feed).plan(feed, NOW + dt.timedelta(minutes=5))
    assert feed.calls[-2:] == ["work orders", "changes 0"] and plan.fetch == set() and not plan.freed


def test_a_new_work_order_fetches_its_unit_and_frees_nothing(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {})
    feed.work_orders = {}
    next_run = settle(tmp_path, feed)
    feed.work_orders = {"w1": order(unit="u2")}
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert plan.fetch == {"u2"} and plan.reasons == {"work orders": 1} and not plan.freed
    assert not [c for c in feed.calls if c.startswith("work order ")]


@pytest.mark.parametrize("now", [order(status="Completed"), order(removes=False), order(start=5, end=6),
                                 order(status="Started"), None])
def test_a_closed_or_changed_work_order_fetches_its_unit_but_is_no_evidence(tmp_path, now):
    """Its nights may still be booked by a hold the tracker never saw: the calendar, judged
    by the reservations view, decides — and no GetWorkOrder (maybe not granted) is asked."""
    feed = Feed([Change("r1", "Create", "t1")], {})
    feed.work_orders = {"w1": order()}
    next_run = settle(tmp_path, feed)
    feed.work_orders = {"w1": now} if now is not None else {}
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert plan.fetch == {"u1"} and plan.reasons == {"work orders": 1} and not plan.freed
    assert not [c for c in feed.calls if c.startswith("work order ")]


def test_a_cancellation_does_not_free_nights_an_open_work_order_blocks(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {})
    feed.work_orders = {"w1": order(start=5, end=6)}  # nights 5 and 6 (its end read inclusively)
    next_run = settle(tmp_path, feed)
    next_run.data["reservations"]["r1"] = ("u1", D(2027, 1, 3), D(2027, 1, 9), "reservation")
    feed.reservations["r1"] = stay("u1", 3, 9, cancelled=True)
    feed.log.append((2, Change("r1", "Delete", "t2")))
    plan = next_run.plan(feed, NOW + dt.timedelta(minutes=5))
    assert plan.freed == {"u1": [(D(2027, 1, 3), D(2027, 1, 5)), (D(2027, 1, 7), D(2027, 1, 9))]}


def test_work_orders_are_remembered_by_unit_dates_and_status_only(tmp_path):
    feed = Feed([Change("r1", "Create", "t1")], {})
    feed.work_orders = {"w1": order()}
    settle(tmp_path, feed)
    saved = read_state(tmp_path / "accounts" / "a" / "changes.json")
    assert saved["work_orders"] == {"w1": ["u1", True, "2027-01-05", "2027-01-08", "Scheduled"]}


def test_without_the_grant_the_reconcile_comes_round_sooner(tmp_path, caplog):
    feed = Feed([Change("r1", "Create", "t1")], {})  # work_orders None: 403
    next_run = settle(tmp_path, feed)
    half = NOW + dt.timedelta(hours=1)  # an hour later: every unit is due with the 1 h fallback
    assert next_run.plan(feed, half).fetch == {"u1", "u2"}
    assert "not granted to this partner" in caplog.text and "every 1 h" in caplog.text
    feed.work_orders = {}
    assert tracker(tmp_path).plan(feed, half).fetch == set()  # granted: the 6 h reconcile
