"""The sandbox's work orders (SearchWorkOrders, GetWorkOrder, SaveWorkOrder, controls) and its
odd NonAvailability items, against the shapes of hsapi-openapi-extract.json."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from test_sandbox import DAY, TODAY, call, get_token, nonavail

from escapia_ical.sandbox import SANDBOX_PMCID, Sandbox
from escapia_ical.sandbox.escapianet import daily_availability

EXTRACT = Path("/work/shared/escapia/hsapi-openapi-extract.json")
SEEDED = TODAY + 250 * DAY  # the seeded blocking work order of 1020-102: nights 250..253


@pytest.fixture
def sb():
    with Sandbox(today=TODAY) as sandbox:
        yield sandbox


def put(sb, http, op, body, token=None):
    token = token or get_token(sb, http)["authorizationHeaderValue"]
    return http.put(f"{sb.base_url}/hsapi/{op}", json=body,
                    headers={"Authorization": token, "x-homeaway-hasp-api-version": "10",
                             "x-homeaway-hasp-api-endsystem": "EscapiaVRS",
                             "x-homeaway-hasp-api-pmcid": SANDBOX_PMCID})


def strip_ids(value):
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k != "$id"}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def test_work_orders_have_the_contracts_shape_and_json_net_ids(sb, http):
    schema = json.loads(EXTRACT.read_text())["components"]["schemas"]
    r = call(sb, http, "SearchWorkOrders", body={"nativeUnitID": "1020-102", "pageSize": 3, "pageNumber": 1})
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(strip_ids(page)) <= set(schema["PagedSearchResults_WorkOrder"]["properties"])
    assert page["$id"] == "1" and page["totalCount"] == 3
    order = page["results"][0]
    assert "$id" in order and "$id" in order["unit"]
    assert set(strip_ids(order)) <= set(schema["WorkOrder"]["properties"])
    assert order["status"] in schema["WorkOrder"]["properties"]["status"]["enum"]
    assert (order["unit"]["nativePMSID"], order["workOrderRemovesUnitFromAvailability"]) == ("1020-102", True)
    assert order["startDateWhenUnitIsRemovedFromAvailability"] == f"{SEEDED.isoformat()}T00:00:00"
    not_removing = page["results"][2]
    assert not_removing["endDateWhenUnitIsRemovedFromAvailability"] == "0001-01-01T00:00:00"


def test_search_filters_by_status_and_start_date_and_pages(sb, http):
    sb.add_work_order("1020-101", TODAY + 5 * DAY, TODAY + 6 * DAY)
    sb.add_work_order("1020-101", TODAY + 9 * DAY, TODAY + 9 * DAY, status="Started")

    def ids(**spec):
        r = call(sb, http, "SearchWorkOrders", body={"pageSize": 100, **spec})
        assert r.status_code == 200, r.text
        return [w["nativePMSID"] for w in r.json()["results"]]

    assert ids() == ["7001", "7002", "7003", "7004", "7005"]
    assert ids(statuses=["Started"]) == ["7005"]
    assert ids(nativeUnitID="1020-101") == ["7004", "7005"]
    # startDateRange: on the removal's start date, inclusive; orders without one never match.
    window = {"startDate": (TODAY + 6 * DAY).isoformat(), "endDate": SEEDED.isoformat()}
    assert ids(startDateRange=window) == ["7001", "7005"]
    second = call(sb, http, "SearchWorkOrders", body={"pageSize": 2, "pageNumber": 2}).json()
    assert (second["fromIndex"], second["toIndex"], len(second["results"])) == (2, 4, 2)
    assert call(sb, http, "SearchWorkOrders", body={"statuses": ["Done"]}).status_code == 400


def test_work_orders_block_nonavailability_and_truth_but_not_the_change_feed(sb, http):
    version = sb.version
    order = sb.add_work_order("1020-105", TODAY + 3 * DAY, TODAY + 4 * DAY)  # nights 3 and 4
    assert sb.version == version
    assert call(sb, http, "GetReservationChanges", params={"startVersion": version}).json()["changes"] == []
    items = nonavail(sb, http, "1020-105").json()
    assert [i["dateRange"]["startDate"] for i in items] == [(TODAY + 3 * DAY).isoformat()]
    assert items[0]["dateRange"]["endDate"] == (TODAY + 5 * DAY).isoformat()  # like a stay: checkout day
    assert sb.blocked_nights("1020-105", TODAY, TODAY + 10 * DAY) == {TODAY + 3 * DAY, TODAY + 4 * DAY}
    with sb._lock:
        assert daily_availability(sb, "1020-105", TODAY, TODAY + 6 * DAY, None) == "AAAOUI"
    assert call(sb, http, "SearchReservationSummaries",
                body={"specification": {"unitNativePMSIDs": ["1020-105"]}}).json()["results"] == []
    sb.complete_work_order(order)
    assert nonavail(sb, http, "1020-105").json() == []
    assert sb.blocked_nights("1020-105", TODAY, TODAY + 10 * DAY) == set()


def test_get_and_save_work_order(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    assert call(sb, http, "GetWorkOrder", params={"nativeWorkOrderId": "7001"}, token=token).json()["status"] \
        == "Scheduled"
    assert call(sb, http, "GetWorkOrder", params={"nativeWorkOrderId": "9"}, token=token).status_code == 404
    created = put(sb, http, "SaveWorkOrder", {
        "unit": {"nativePMSID": "1020-105"}, "status": "Scheduled", "workOrderRemovesUnitFromAvailability": True,
        "startDateWhenUnitIsRemovedFromAvailability": (TODAY + DAY).isoformat(),
        "endDateWhenUnitIsRemovedFromAvailability": f"{(TODAY + 2 * DAY).isoformat()}T00:00:00"}, token)
    assert created.status_code == 200, created.text
    order = created.json()["nativePMSID"]
    assert sb.blocked_nights("1020-105", TODAY, TODAY + 5 * DAY) == {TODAY + DAY, TODAY + 2 * DAY}
    updated = put(sb, http, "SaveWorkOrder", {"nativePMSID": order, "status": "Completed"}, token)
    assert updated.json()["status"] == "Completed" and updated.json()["active"] is False
    assert sb.blocked_nights("1020-105", TODAY, TODAY + 5 * DAY) == set()
    assert put(sb, http, "SaveWorkOrder", {"nativePMSID": "404404", "status": "Started"}, token).status_code == 404
    assert put(sb, http, "SaveWorkOrder", {"status": "Started"}, token).status_code == 400


def test_work_order_operations_answer_403_when_not_granted(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    assert http.put(f"{sb.base_url}/_sandbox/work_orders", json={"granted": False}).status_code == 200
    assert call(sb, http, "SearchWorkOrders", body={}, token=token).status_code == 403
    assert call(sb, http, "GetWorkOrder", params={"nativeWorkOrderId": "7001"}, token=token).status_code == 403
    assert put(sb, http, "SaveWorkOrder", {"status": "Started"}, token).status_code == 403
    assert nonavail(sb, http, "1020-102", token=token).status_code == 200  # the calendar still answers


def test_control_endpoints_add_change_and_complete(sb, http):
    base = f"{sb.base_url}/_sandbox/work_orders"
    r = http.post(base, json={"unit": "1020-105", "start": (TODAY + DAY).isoformat(),
                              "end": (TODAY + DAY).isoformat()})
    assert r.status_code == 201, r.text
    order = r.json()["id"]
    assert http.put(f"{base}/{order}", json={"end": (TODAY + 2 * DAY).isoformat()}).status_code == 200
    assert sb.blocked_nights("1020-105", TODAY, TODAY + 5 * DAY) == {TODAY + DAY, TODAY + 2 * DAY}
    assert http.delete(f"{base}/{order}").status_code == 200
    listed = http.get(base, params={"unit": "1020-105"}).json()["workOrders"]
    assert listed == [{"id": order, "unit": "1020-105", "status": "Completed", "removes": True,
                       "start": (TODAY + DAY).isoformat(), "end": (TODAY + 2 * DAY).isoformat()}]
    assert http.put(f"{base}/{order}", json={"status": "Done"}).status_code == 400
    assert http.delete(f"{base}/nope").status_code == 404


@pytest.mark.parametrize("item", ["no_range", "null", "ref", "empty_end", "datetimes"])
def test_odd_nonavailability_items(sb, http, item):
    normal = nonavail(sb, http, "1020-101").json()
    sb.inject("odd_items", item=item, times=1)
    odd = nonavail(sb, http, "1020-101").json()
    if item == "no_range":
        assert odd[:-1] == normal and set(odd[-1]) == {"$id"}
    elif item == "null":
        assert odd == [*normal, None]
    elif item == "ref":
        assert odd == [*normal, {"$ref": normal[0]["$id"]}]
    elif item == "empty_end":
        assert odd[0]["dateRange"]["endDate"] == "0001-01-01T00:00:00" and odd[1:] == normal[1:]
    else:
        assert odd[0]["dateRange"]["startDate"] == normal[0]["dateRange"]["startDate"] + "T00:00:00"
    assert nonavail(sb, http, "1020-101").json() == normal  # times=1
    with pytest.raises(ValueError):
        sb.inject("odd_items", item="odd")


def test_work_order_end_is_checked(sb):
    with pytest.raises(ValueError):
        sb.add_work_order("1020-105", TODAY + 2 * DAY, TODAY + DAY)
    with pytest.raises(ValueError):
        sb.add_work_order("1020-105", None, None)  # removes the unit: needs dates
    assert [w["id"] for w in sb.work_orders("1020-105")] == []
    assert sb.blocked_nights("1020-102", SEEDED, SEEDED + 10 * DAY) == {SEEDED + i * DAY for i in range(4)}
    dt.date.today()  # (dates in this module are relative to TODAY)
