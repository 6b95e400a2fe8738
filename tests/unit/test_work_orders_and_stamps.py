"""Answers that look complete but are not: a SearchWorkOrders walk that ends before its
totalCount, and an EscapiaNET summary whose LastUpdated cannot tell changes apart."""

from __future__ import annotations

import datetime as dt

import pytest

from escapia_ical.config import EscapianetAccount
from escapia_ical.errors import SourceError
from escapia_ical.model import Unit
from escapia_ical.sources.hsapi_work_orders import search_open_work_orders
from escapia_ical.state import AccountState
from escapia_ical.sync.quiet import QuietTracker


def order(i: int) -> dict:
    return {"nativePMSID": f"W{i}", "unit": {"nativePMSID": "U1"}, "status": "Scheduled",
            "workOrderRemovesUnitFromAvailability": True,
            "startDateWhenUnitIsRemovedFromAvailability": "2030-01-01",
            "endDateWhenUnitIsRemovedFromAvailability": "2030-01-03"}


@pytest.mark.parametrize("first_page", [[], [order(1), order(2)]])
def test_a_work_order_list_that_ends_before_its_total_count_is_an_error(first_page):
    """Orders past the cut would look closed: every unit refetched, and the reservations
    view calling their nights free."""
    def call(method, op, json=None, **_):
        assert "startDateRange" not in json  # its meaning is not published: not relied on
        return {"results": first_page if json["pageNumber"] == 1 else [], "totalCount": 5}

    with pytest.raises(SourceError, match="totalCount is 5 .* the list is incomplete"):
        search_open_work_orders(call, lambda: None)


class Summaries:
    """An EscapiaNET source as the quiet tracker sees it."""

    listing_truncated, batch_from_cache, read_per_unit = False, False, False

    def __init__(self):
        self.batch_stamps: dict[str, str] = {}
        self.summary: dict[str, str] = {}

    def list_units(self):
        return [Unit("U1", "U1", "U1"), Unit("U2", "U2", "U2")]

    def changed_units(self, after):
        return dict(self.summary), False


@pytest.mark.parametrize("stamp", ["", "2030-01-01"])
def test_a_unit_listed_with_no_time_in_its_last_updated_is_always_read(tmp_path, stamp):
    state = AccountState(tmp_path, "a")
    state.folder.mkdir(parents=True)
    tracker, source = QuietTracker(EscapianetAccount(name="a", username="u", password="p"), state), Summaries()
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    source.batch_stamps = {"U1": stamp, "U2": stamp}
    plan = tracker.plan(source, now)
    assert plan.full
    tracker.commit(plan, {"U1", "U2"}, now)
    source.summary = {"U1": stamp}  # listed as changed since the mark; the stamp is the same
    for minutes in (5, 10):
        assert tracker.plan(source, now + dt.timedelta(minutes=minutes)).fetch == {"U1"}


@pytest.mark.parametrize("body", [
    [{"$id": "1", "dateRange": {"$id": "2", "startDate": "2030-01-01", "endDate": "2030-01-03"}}, {"$ref": "2"}],
    [{"startDate": "2030-01-01", "endDate": "2030-01-03"}],
])
def test_an_item_that_is_not_an_item_is_an_error_not_a_free_calendar(body):
    from escapia_ical.sources.hsapi_decode import parse_nonavailability

    with pytest.raises(SourceError, match="is not a NonAvailability item"):
        parse_nonavailability(body, "GetUnitNonAvailability for unit 'U1'")
