"""The sandbox's fault injection (escapia_ical/sandbox/faults.py) over real HTTP."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import defusedxml
import pytest
import requests
from defusedxml import ElementTree as SafeET
from test_sandbox import TODAY, call, get_token, nonavail, ranges_of
from test_sandbox_escapianet import CONTENT, batch, calendar, e, request_xml
from test_sandbox_escapianet import call as soap

from escapia_ical.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox


@pytest.fixture
def sb():
    with Sandbox(today=TODAY, max_page_size=3) as sandbox:
        yield sandbox


@pytest.fixture
def token(sb, http):
    return get_token(sb, http)["authorizationHeaderValue"]


def units(sb, http, token):
    return call(sb, http, "SearchUnitSummaries", token=token, body={"pageNumber": 1})


def cal(sb, http, unit="1020-101"):
    return soap(sb, http, "UnitCalendarAvail", calendar(unit, "12/30/2026", "01/30/2027"))


def soap_root(r):
    assert r.status_code == 200, r.text
    return SafeET.fromstring(r.content)


def test_inject_validates(sb):
    for args, kw in [(("nope",), {}), (("latency",), {"op": "Nope"}), (("latency",), {"times": 0}),
                     (("latency",), {"bogus": 1}), (("status",), {"status": 99}),
                     (("huge_body",), {"style": "zip"}), (("empty",), {"fill": "AB"}),
                     (("absurd_dates",), {"year": 0}), (("huge_body",), {"chunked": "yes"}),
                     (("trickle",), {"part": "trailer"}), (("trickle",), {"seconds": -1}),
                     (("redirect",), {"status": 302}), (("redirect",), {"location": "ftp://x/"})]:
        with pytest.raises(ValueError):
            sb.inject(*args, **kw)
    assert sb.faults.active() == []


def test_latency_timeout_and_reset(sb, http, token):
    sb.inject("latency", seconds=0.2, op="GetUnitNonAvailability", times=1)
    started = time.monotonic()
    assert nonavail(sb, http, "1020-101", token=token).status_code == 200
    assert time.monotonic() - started >= 0.2
    sb.inject("timeout", seconds=1.0, unit="1020-102", times=1)
    with pytest.raises(requests.Timeout):
        http.post(f"{sb.base_url}/hsapi/GetUnitNonAvailability", timeout=(2, 0.3), headers={
            "Authorization": token, "x-homeaway-hasp-api-version": "10", "x-homeaway-hasp-api-pmcid": "1020",
            "x-homeaway-hasp-api-endsystem": "EscapiaVRS"},
            json={"dateRange": {"startDate": "2027-01-01", "endDate": "2027-02-01"}, "nativePMSUnitID": "1020-102"})
    sb.inject("reset", op="UnitSearch", times=1)
    with pytest.raises(requests.ConnectionError):
        soap(sb, http, "UnitSearch")
    assert soap(sb, http, "UnitSearch").status_code == 200
    assert [r["status"] for r in sb.requests if r["op"] == "UnitSearch"] == [None, 200]
    assert sb.requests[-2]["faults"] == ["reset"]


def test_status_and_rate_limit(sb, http, token):
    sb.inject("status", status=502, op="SearchUnitSummaries", times=1)
    r = units(sb, http, token)
    assert r.status_code == 502 and r.headers["Content-Type"] == "text/html" and "Bad Gateway" in r.text
    sb.inject("status", status=500, unit="1020-101", times=1)
    assert nonavail(sb, http, "1020-102", token=token).status_code == 200  # other units pass
    assert nonavail(sb, http, "1020-101", token=token).json()["status"] == 500
    sb.inject("rate_limit", retry_after=3, op="GetUnitNonAvailability", times=1)
    r = nonavail(sb, http, "1020-101", token=token)
    assert (r.status_code, r.headers["Retry-After"], r.json()["message"]) == (429, "3", "TooManyRequests")
    sb.inject("status", status=503, retry_after=2, op="UnitCalendarAvailBatch", times=1)
    r = soap(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and "Server Too Busy" in r.text
    assert sb.faults.active() == []


def test_broken_bodies(sb, http, token):
    sb.inject("malformed", op="SearchUnitSummaries", times=1)
    with pytest.raises(ValueError):
        units(sb, http, token).json()
    sb.inject("malformed", op="UnitSearch", times=1)
    with pytest.raises(ET.ParseError):
        SafeET.fromstring(soap(sb, http, "UnitSearch").content)
    whole = cal(sb, http).content
    sb.inject("truncated", keep=0.3, times=1)
    cut = cal(sb, http).content
    assert whole.startswith(cut) and 0 < len(cut) < len(whole)
    sb.inject("truncated", announce_full=True, op="GetUnitNonAvailability", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        nonavail(sb, http, "1020-101", token=token)
    sb.inject("entity_bomb", times=1)  # not JSON: passes HSAPI by, fires on the SOAP answer
    assert nonavail(sb, http, "1020-101", token=token).status_code == 200
    with pytest.raises(defusedxml.EntitiesForbidden):
        SafeET.fromstring(cal(sb, http).content)
    sb.inject("deep_nesting", op="GetUnitNonAvailability", depth=50_000, times=1)
    with pytest.raises(RecursionError):
        json.loads(nonavail(sb, http, "1020-101", token=token).content)


@pytest.mark.parametrize("style", ["key", "whitespace"])
@pytest.mark.parametrize("chunked", [False, True])
def test_huge_bodies_stay_valid(sb, http, token, style, chunked):
    normal, answer = nonavail(sb, http, "1020-101", token=token).json(), cal(sb, http).content
    sb.inject("huge_body", style=style, size=2_000_000, times=2, chunked=chunked)
    r = nonavail(sb, http, "1020-101", token=token)
    assert len(r.content) > 2_000_000
    if chunked:
        assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
    else:
        assert int(r.headers["Content-Length"]) == len(r.content)
    padded = r.json()
    padded[0].pop("sandboxPadding", None)
    assert padded == normal
    r = cal(sb, http)
    assert len(r.content) > 2_000_000
    days = [d.text for d in SafeET.fromstring(r.content).iter(e("DailyAvailability"))]
    assert days == [d.text for d in SafeET.fromstring(answer).iter(e("DailyAvailability"))]


def test_empty_answers(sb, http, token):
    sb.inject("empty", op="SearchUnitSummaries", times=1)
    body = units(sb, http, token).json()
    assert (body["results"], body["totalCount"]) == ([], 0)
    sb.inject("empty", times=1)  # no op: calendars only
    assert units(sb, http, token).json()["results"]
    assert nonavail(sb, http, "1020-101", token=token).json() == []
    sb.inject("empty", op="UnitSearch", times=1)
    assert len(soap_root(soap(sb, http, "UnitSearch")).find(f".//{e('Units')}")) == 0
    sb.inject("empty", times=1)
    assert soap_root(cal(sb, http)).findtext(f".//{e('DailyAvailability')}") in ("", None)
    sb.inject("empty", fill="A", unit="1020-102", times=1)  # one unit inside the batch
    rs = soap_root(soap(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT))
    days = {a.get("UnitCode"): a.findtext(f".//{e('DailyAvailability')}") for a in rs.iter(e("UnitCalendarAvail"))}
    assert set(days["1020-102"]) == {"A"} and "O" in days["1020-101"]


def test_wrong_data(sb, http, token):
    truth = ranges_of(nonavail(sb, http, "1020-101", token=token).json())
    sb.inject("wrong_types", op="SearchUnitSummaries", times=1)
    assert isinstance(units(sb, http, token).json()["results"], dict)
    sb.inject("wrong_types", times=2)
    assert all(isinstance(i["dateRange"]["startDate"], int) for i in nonavail(sb, http, "1020-101", token=token).json())
    assert nonavail(sb, http, "1020-105", token=token).json() == {"$id": "1", "results": []}
    sb.inject("end_before_start", times=1)
    assert all(e < s for s, e in ranges_of(nonavail(sb, http, "1020-101", token=token).json()))
    for year in (1, 9999):
        sb.inject("absurd_dates", year=year, times=1)
        moved = ranges_of(nonavail(sb, http, "1020-101", token=token).json())
        assert len(moved) == len(truth) and all(s.year == year and e >= s for s, e in moved)
    segment = next(soap_root(cal(sb, http)).iter(e("UnitCalendarAvailSegment")))
    for fault, expected in [("wrong_types", ("20261230", segment.get("EndDate"))),
                            ("end_before_start", ("2026-12-30", "2026-12-29")),
                            ("absurd_dates", ("0001-12-30", "0002-01-30"))]:
        sb.inject(fault, times=1)
        changed = next(soap_root(cal(sb, http)).iter(e("UnitCalendarAvailSegment")))
        assert (changed.get("StartDate"), changed.get("EndDate")) == expected, fault
    sb.inject("absurd_dates", year=9999, op="UnitCalendarAvailBatch", times=1)
    rs = soap_root(soap(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT))
    segment = next(rs.iter(e("UnitCalendarAvailSegment")))
    assert segment.get("StartDate").startswith("9999-") and segment.get("EndDate") == "9999-12-31"


def test_tokens_expire_after_calls(sb, http, token):
    sb.inject("expire_tokens", calls=2, times=1)
    assert [units(sb, http, token).status_code for _ in range(3)] == [200, 200, 401]
    fresh = get_token(sb, http)["authorizationHeaderValue"]
    assert [units(sb, http, fresh).status_code for _ in range(4)] == [200] * 4  # times=1: used up


def test_control_api(sb, http, token):
    url = f"{sb.base_url}/_sandbox/faults"
    assert http.post(url, json={"fault": "nope"}).status_code == 400
    assert http.post(url, json={"fault": "status", "status": 503, "op": "GetUnitNonAvailability"}).status_code == 200
    assert http.get(url).json()["faults"] == [{"fault": "status", "op": "GetUnitNonAvailability", "unit": None,
                                               "times": None, "params": {"status": 503, "retry_after": None}}]
    assert nonavail(sb, http, "1020-101", token=token).status_code == 503
    assert http.delete(url).status_code == 200 and http.get(url).json()["faults"] == []
    assert nonavail(sb, http, "1020-101", token=token).status_code == 200


@pytest.mark.parametrize("part", ["headers", "body"])
def test_trickle_sends_the_normal_answer_a_byte_at_a_time(sb, http, part):
    url = f"{sb.base_url}/hsapi/auth/token"
    normal = http.get(url, auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET))
    sb.inject("trickle", seconds=0.005, part=part, op="auth/token", times=1)
    started = time.monotonic()
    with http.get(url, auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), stream=True) as r:
        headers_took = time.monotonic() - started
        body = r.content
    took = time.monotonic() - started
    assert r.status_code == 200 and set(json.loads(body)) == set(normal.json())
    assert took >= 0.005 * len(body)  # every byte of the body waited
    head = 0.005 * 100  # a status line and headers are well over 100 bytes
    assert headers_took >= head if part == "headers" else headers_took < head
    assert sb.requests[-1]["faults"] == ["trickle"]


def test_redirect_points_elsewhere_and_keeps_the_path(sb, http, token):
    sb.inject("redirect", op="GetUnitNonAvailability", times=1)
    r = http.post(f"{sb.base_url}/hsapi/GetUnitNonAvailability", json={}, allow_redirects=False,
                  headers={"Authorization": token})
    assert (r.status_code, r.headers["Location"]) == (307, "http://127.0.0.1:9/hsapi/GetUnitNonAvailability")
    sb.inject("redirect", status=308, location="http://127.0.0.1:1/x", op="UnitSearch", times=1)
    r = http.post(f"{sb.base_url}/EVRNService.svc", data=request_xml("UnitSearch"), allow_redirects=False,
                  headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "UnitSearch"})
    assert (r.status_code, r.headers["Location"]) == (308, "http://127.0.0.1:1/x")
    assert [q["status"] for q in sb.requests[-2:]] == [307, 308]
