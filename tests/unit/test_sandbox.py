"""The Escapia HSAPI sandbox: contract shapes, auth, faults, ground truth, control API."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from escapia_ical.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PMCID, Sandbox

TODAY = dt.date(2026, 12, 30)  # a New Year stay is in progress; Feb 29 2028 is in the window
DAY = dt.timedelta(days=1)
WIN_START, WIN_END = TODAY - 7 * DAY, TODAY + 730 * DAY


@pytest.fixture
def sb():
    with Sandbox(today=TODAY, extra_units=3, max_page_size=3) as sandbox:
        yield sandbox


def get_token(sb: Sandbox, http: requests.Session) -> dict:
    r = http.get(f"{sb.base_url}/hsapi/auth/token", auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET))
    assert r.status_code == 200, r.text
    return r.json()


def call(sb, http, op, *, body=None, params=None, token=None, **overrides):
    """Call an HSAPI op with correct headers; ``overrides`` (None = drop) replace them."""
    if token is None:
        token = get_token(sb, http)["authorizationHeaderValue"]
    headers = {"Authorization": token, "x-homeaway-hasp-api-version": "10",
               "x-homeaway-hasp-api-endsystem": "EscapiaVRS", "x-homeaway-hasp-api-pmcid": SANDBOX_PMCID}
    headers.update({k.replace("_", "-"): v for k, v in overrides.items()})
    headers = {k: v for k, v in headers.items() if v is not None}
    url = f"{sb.base_url}/hsapi/{op}"
    if body is None:
        return http.get(url, params=params, headers=headers)
    return http.post(url, json=body, params=params, headers=headers)


def nonavail(sb, http, unit, start=WIN_START, end=WIN_END, **kw):
    return call(sb, http, "GetUnitNonAvailability", token=kw.pop("token", None),
                body={"dateRange": {"startDate": start.isoformat(), "endDate": end.isoformat()},
                      "nativePMSUnitID": unit})


def ranges_of(items) -> list[tuple[dt.date, dt.date]]:
    return [(dt.date.fromisoformat(i["dateRange"]["startDate"]),
             dt.date.fromisoformat(i["dateRange"]["endDate"])) for i in items]


# -- auth ----------------------------------------------------------------------------------
def test_token_flow(sb, http):
    url = f"{sb.base_url}/hsapi/auth/token"
    assert http.get(url).status_code == 401
    assert http.get(url, auth=(SANDBOX_CLIENT_ID, "wrong")).status_code == 401
    assert http.get(url, headers={"Authorization": "Basic %%%"}).status_code == 401
    tok = get_token(sb, http)
    assert tok["$id"] == "1" and tok["authorizationHeaderValue"] == f"Bearer {tok['encodedId']}"
    expires = dt.datetime.fromisoformat(tok["expiration"].replace("Z", "+00:00"))
    assert abs((expires - dt.datetime.now(dt.UTC)).total_seconds() - 3600) < 60
    bearer = tok["authorizationHeaderValue"]
    assert call(sb, http, "ListPmcs", token=bearer).status_code == 200
    assert call(sb, http, "ListPmcs", token="Bearer bm9wZQ==").status_code == 401
    assert call(sb, http, "ListPmcs", token=None, Authorization=None).status_code == 401
    sb.expire_tokens()
    assert call(sb, http, "ListPmcs", token=bearer).status_code == 401
    assert call(sb, http, "ListPmcs").status_code == 200  # a fresh token works


def test_token_ttl_expiry(http):
    with Sandbox(today=TODAY, token_ttl=0.05) as sb:
        bearer = get_token(sb, http)["authorizationHeaderValue"]
        time.sleep(0.1)
        assert call(sb, http, "ListPmcs", token=bearer).status_code == 401


def test_required_headers(sb, http):
    bearer = get_token(sb, http)["authorizationHeaderValue"]
    body = {"pageSize": 3, "pageNumber": 1}
    for override, status in [({"x-homeaway-hasp-api-version": None}, 400),
                             ({"x-homeaway-hasp-api-version": "9"}, 400),
                             ({"x-homeaway-hasp-api-endsystem": "V12"}, 400),
                             ({"x-homeaway-hasp-api-endsystem": None}, 400),
                             ({"x-homeaway-hasp-api-pmcid": None}, 400),
                             ({"x-homeaway-hasp-api-pmcid": "9999"}, 403)]:
        r = call(sb, http, "SearchUnitSummaries", body=body, token=bearer, **override)
        assert r.status_code == status, override
        assert r.json()["message"]
    pmcs = call(sb, http, "ListPmcs", token=bearer, x_homeaway_hasp_api_pmcid=None)
    assert pmcs.status_code == 200
    assert [(c["pmcid"], c["endSystem"]) for c in pmcs.json()] == [(SANDBOX_PMCID, "EscapiaVRS")]


def test_routing_and_bad_bodies(sb, http):
    bearer = get_token(sb, http)["authorizationHeaderValue"]
    assert call(sb, http, "NoSuchOp", token=bearer).status_code == 404
    assert http.get(f"{sb.base_url}/elsewhere").status_code == 404
    assert call(sb, http, "SearchUnitSummaries", token=bearer).status_code == 405  # GET
    assert http.post(f"{sb.base_url}/hsapi/auth/token").status_code == 405
    hdrs = {"Authorization": bearer, "x-homeaway-hasp-api-version": "10",
            "x-homeaway-hasp-api-endsystem": "EscapiaVRS", "x-homeaway-hasp-api-pmcid": "1020"}
    for raw in (b"{not json", b"[1, 2]"):
        r = http.post(f"{sb.base_url}/hsapi/SearchUnitSummaries", data=raw, headers=hdrs)
        assert r.status_code == 400
    prefixed = http.get(f"{sb.base_url}/dragomanadapter/hsapi/ListPmcs", headers=hdrs)
    assert prefixed.status_code == 200


# -- units -----------------------------------------------------------------------------------
def test_paging_walks_all_units_once(sb, http):
    bearer = get_token(sb, http)["authorizationHeaderValue"]
    seen, page = [], 1
    while True:
        r = call(sb, http, "SearchUnitSummaries", token=bearer,
                 body={"specification": {}, "pageSize": 10, "pageNumber": page})
        data = r.json()
        assert r.status_code == 200 and data["$id"] == "1"
        assert data["pageSize"] == 3 and data["pageNumber"] == page  # capped at max_page_size
        assert data["totalCount"] == len(sb.unit_ids()) == 11
        assert data["toIndex"] - data["fromIndex"] == len(data["results"])
        if not data["results"]:
            break
        assert all("$id" in u and isinstance(u["id"], int) and u["pmcid"] == "1020" for u in data["results"])
        seen += data["results"]
        page += 1
    assert page == 5  # 11 units in pages of 3, then one empty page
    assert [u["nativePMSID"] for u in seen] == sb.unit_ids()
    assert [u["code"] for u in seen] == sorted(u["code"] for u in seen)
    names = {u["nativePMSID"]: u["name"] for u in seen}
    assert names["1020/7B"] == "Café «Lanai» & Spa — Suite #4" and names["ünit 9"] == "Ōhiʻa Hale"
    assert names["1020-108"] == 'Pele\'s "Hideaway" \\ Loft; A/C'
    default = call(sb, http, "SearchUnitSummaries", token=bearer, body={}).json()
    assert default["pageNumber"] == 1 and len(default["results"]) == 3
    assert call(sb, http, "SearchUnitSummaries", token=bearer,
                body={"pageNumber": 0}).status_code == 400


# -- non-availability ------------------------------------------------------------------------
@pytest.mark.parametrize("end_date", ["exclusive", "inclusive"])
def test_nonavailability_matches_truth(http, end_date):
    shift = DAY if end_date == "inclusive" else dt.timedelta(0)
    with Sandbox(today=TODAY, extra_units=3, end_date=end_date) as sb:
        token = get_token(sb, http)["authorizationHeaderValue"]
        for unit in sb.unit_ids():
            r = nonavail(sb, http, unit, token=token)
            assert r.status_code == 200
            assert all("$id" in i and set(i) == {"$id", "dateRange"} for i in r.json())
            got = [(s, e + shift) for s, e in ranges_of(r.json())]
            # whole reservations (not clipped, not merged), one item per reservation/hold/work order
            assert sorted(got) == [(a, d) for a, d in sorted(sb.data.blocking_spans(unit))
                                   if a <= WIN_END and d > WIN_START]
            nights = {s + i * DAY for s, e in got for i in range((e - s).days)}
            assert {n for n in nights if WIN_START <= n < WIN_END} == sb.blocked_nights(unit, WIN_START, WIN_END)
        edges = ranges_of(nonavail(sb, http, "1020-104", token=token).json())
        assert edges[0][0] == TODAY - 12 * DAY and edges[-1] == (TODAY + 725 * DAY, TODAY + 740 * DAY - shift)
        one_night = ranges_of(nonavail(sb, http, "1020-101", TODAY, TODAY, token=token).json())
        assert one_night == [(TODAY, TODAY + DAY - shift)]


def test_nonavailability_errors_and_pii(http):
    with Sandbox(today=TODAY, guest_data_in_nonavailability=True) as sb:
        token = get_token(sb, http)["authorizationHeaderValue"]
        assert nonavail(sb, http, "no-such-unit", token=token).status_code == 404
        for bad in [{}, {"startDate": "2026-13-01", "endDate": "2027-01-01"},
                    {"startDate": "2027-01-02", "endDate": "2027-01-01"}]:
            r = call(sb, http, "GetUnitNonAvailability", token=token,
                     body={"dateRange": bad, "nativePMSUnitID": "1020-101"})
            assert r.status_code == 400, bad
        items = nonavail(sb, http, "1020-101", token=token).json()
        assert items and all({"guestName", "guestEmail", "guestPhone", "totalPrice"} <= set(i) for i in items)
        holds = nonavail(sb, http, "1020-102", token=token).json()
        assert any("guestName" not in i for i in holds)  # holds have no guest


def test_seeded_edge_cases(sb):
    assert (TODAY, TODAY + DAY) in sb.stays("1020-101")
    stays101 = sb.stays("1020-101")
    assert any(a[1] == b[0] for a, b in zip(stays101, stays101[1:], strict=False))  # back-to-back
    assert sum(1 for a, d in stays101 if (d - a).days == 1) >= 3
    holds = {r["holdType"]: r for r in sb.reservations("1020-102") if r["holdType"] != "None"}
    assert {"Owner", "Maintenance"} <= set(holds)
    guests = [r for r in sb.reservations("1020-102") if r["holdType"] == "None"]
    maint = [r for r in sb.reservations("1020-102") if r["holdType"] == "Maintenance"]
    assert any(m["start"] < g["end"] and m["end"] > g["start"] for m in maint for g in guests)
    stays103 = sb.stays("1020-103")
    assert (dt.date(2026, 12, 28), dt.date(2027, 1, 3)) in stays103
    assert any(a <= dt.date(2028, 2, 29) < d for a, d in stays103)
    stays104 = sb.stays("1020-104")
    for offsets in [(-36, -30), (-12, -3), (725, 740), (800, 805)]:
        assert (TODAY + offsets[0] * DAY, TODAY + offsets[1] * DAY) in stays104
    assert sb.stays("1020-105") == []
    assert {"1020/7B", "ünit 9", "1020-2001", "1020-2003"} <= set(sb.unit_ids())


def test_deterministic_seed():
    def snapshot(**kw):
        s = Sandbox(today=TODAY, extra_units=2, **kw)
        try:
            return {u: s.stays(u) for u in s.unit_ids()}
        finally:
            s.stop()
    assert snapshot() == snapshot()
    other = snapshot(seed=7)
    assert other != snapshot() and other["1020-101"] == snapshot()["1020-101"]


# -- faults ----------------------------------------------------------------------------------
def test_fail_unit_and_operation(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    sb.fail_unit("1020-101", 503, times=2)
    assert [nonavail(sb, http, "1020-101", token=token).status_code for _ in range(3)] == [503, 503, 200]
    sb.fail_unit("ünit 9", 500)
    assert nonavail(sb, http, "1020-102", token=token).status_code == 200
    assert all(nonavail(sb, http, "ünit 9", token=token).status_code == 500 for _ in range(3))
    sb.fail_operation("SearchUnitSummaries", 429, retry_after=7)
    r = call(sb, http, "SearchUnitSummaries", token=token, body={})
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert call(sb, http, "SearchUnitSummaries", token=token, body={}).status_code == 200
    sb.fail_operation("GenerateToken", 500, times=None)
    assert http.get(f"{sb.base_url}/hsapi/auth/token", auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)).status_code == 500
    sb.clear_faults()
    assert nonavail(sb, http, "ünit 9", token=token).status_code == 200
    get_token(sb, http)
    with pytest.raises(ValueError):
        sb.fail_operation("Nope", 500)


def test_request_log(sb, http):
    sb.reset_request_log()
    token = get_token(sb, http)["authorizationHeaderValue"]
    nonavail(sb, http, "1020/7B", token=token)
    nonavail(sb, http, "nope", token=token)
    assert sb.request_count() == 3 and sb.request_count("GenerateToken") == 1
    assert sb.request_count("GetUnitNonAvailability") == 2
    last = sb.requests[-1]
    assert (last["method"], last["op"], last["unit"], last["status"]) == ("POST", "GetUnitNonAvailability", "nope", 404)
    assert last["headers"]["Authorization"] == "<redacted>"
    assert all(token.split()[1] not in str(r) for r in sb.requests)
    sb.reset_request_log()
    assert sb.request_count() == 0


def test_latency(http):
    with Sandbox(today=TODAY, latency=0.05) as sb:
        started = time.monotonic()
        get_token(sb, http)
        assert time.monotonic() - started >= 0.05


# -- reservations and the change feed --------------------------------------------------------
def walk_changes(sb, http, token, start=0):
    changes, version, sizes = [], start, []
    while True:
        data = call(sb, http, "GetReservationChanges", token=token, params={"startVersion": version}).json()
        assert data["startVersion"] == version
        sizes.append(len(data["changes"]))
        if not data["changes"]:
            return changes, data["endVersion"], sizes
        changes += data["changes"]
        version = data["endVersion"]


def test_changes_and_mutations(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    seeded, version, sizes = walk_changes(sb, http, token)
    assert sizes[0] == 100 and version == sb.version and len(seeded) == sb.version
    assert {c["changeType"] for c in seeded} == {"Create"}
    first = call(sb, http, "GetReservationById", token=token, params={"id": seeded[0]["nativePMSID"]}).json()
    assert first["unitNativePMSID"] in sb.unit_ids() and first["holdType"] in ("None", "Owner", "Maintenance")

    start, end = TODAY + 3 * DAY, TODAY + 6 * DAY
    rid = sb.add_reservation("1020-105", start, end, "Owner")
    assert sb.blocked_nights("1020-105", WIN_START, WIN_END) == {start, start + DAY, start + 2 * DAY}
    changes, version, _ = walk_changes(sb, http, token, version)
    assert [(c["nativePMSID"], c["changeType"]) for c in changes] == [(rid, "Create")]
    res = call(sb, http, "GetReservationById", token=token, params={"id": rid}).json()
    assert res["unitNativePMSID"] == "1020-105" and res["holdType"] == "Owner"
    assert res["stayDateRange"] == {"$id": "2", "startDate": start.isoformat(), "endDate": end.isoformat()}

    sb.move_reservation(rid, start, end + DAY)
    changes, version, _ = walk_changes(sb, http, token, version)
    assert [(c["nativePMSID"], c["changeType"]) for c in changes] == [(rid, "Update")]
    sb.cancel_reservation(rid)
    assert sb.blocked_nights("1020-105", WIN_START, WIN_END) == set() and sb.stays("1020-105") == []
    cancelled = call(sb, http, "GetReservationById", token=token, params={"id": rid})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled"
    assert cancelled.json()["unitNativePMSID"]  # a client can still tell which unit it freed
    assert call(sb, http, "GetReservationById", token=token, params={"id": "no-such"}).status_code == 404

    other = sb.add_reservation("1020-105", start, end)  # several changes collapse into the latest
    sb.move_reservation(other, start + DAY, end)
    sb.cancel_reservation(other)
    changes, version, _ = walk_changes(sb, http, token, version)
    assert [(c["nativePMSID"], c["changeType"]) for c in changes] == [(rid, "Delete"), (other, "Delete")]
    x = sb.add_reservation("1020-105", start, end)
    y = sb.add_reservation("1020-105", end, end + DAY)
    sb.move_reservation(x, start - DAY, end)  # x's latest change is now after y's
    data = call(sb, http, "GetReservationChanges", token=token, params={"startVersion": version}).json()
    assert [(c["nativePMSID"], c["changeType"]) for c in data["changes"]] == [(y, "Create"), (x, "Update")]
    assert data["endVersion"] == sb.version
    with pytest.raises(KeyError):
        sb.cancel_reservation(other)


def changes_at(sb, http, token, version):
    return call(sb, http, "GetReservationChanges", token=token, params={"startVersion": version})


@pytest.mark.parametrize("future_versions", ["error", "empty"])
def test_change_feed_beyond_its_end(http, future_versions):
    with Sandbox(today=TODAY, future_versions=future_versions) as sb:
        token = get_token(sb, http)["authorizationHeaderValue"]
        end = sb.version
        assert changes_at(sb, http, token, end).json() == {"$id": "1", "startVersion": end, "endVersion": end,
                                                            "changes": []}
        ahead = changes_at(sb, http, token, end + 5)
        if future_versions == "error":
            assert ahead.status_code == 400 and "not a version" in ahead.json()["message"]
        else:
            assert ahead.status_code == 200
            assert ahead.json() == {"$id": "1", "startVersion": end + 5, "endVersion": end + 5, "changes": []}
        assert changes_at(sb, http, token, -1).status_code == 400  # never a version, in either mode
    with pytest.raises(ValueError):
        Sandbox(today=TODAY, future_versions="ignore")


def test_restart_change_log(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    seeded, cursor, _ = walk_changes(sb, http, token)
    stays = {u: sb.stays(u) for u in sb.unit_ids()}
    sb.restart_change_log()
    assert sb.version == 0 and {u: sb.stays(u) for u in sb.unit_ids()} == stays  # reservations kept
    assert changes_at(sb, http, token, cursor).status_code == 400  # the client's cursor is ahead now
    assert walk_changes(sb, http, token) == ([], 0, [0])
    old = call(sb, http, "GetReservationById", token=token, params={"id": seeded[0]["nativePMSID"]})
    assert old.status_code == 200 and old.json()["reservationNumber"] == seeded[0]["nativePMSID"]
    rid = sb.add_reservation("1020-105", TODAY + 3 * DAY, TODAY + 5 * DAY)
    sb.move_reservation(seeded[0]["nativePMSID"], TODAY + 600 * DAY, TODAY + 602 * DAY)
    changes, version, _ = walk_changes(sb, http, token)
    assert version == sb.version == 2
    assert [(c["nativePMSID"], c["changeType"]) for c in changes] == [(rid, "Create"),
                                                                       (seeded[0]["nativePMSID"], "Update")]
    assert [c["nativePMSID"] for c in walk_changes(sb, http, token, 1)[0]] == [seeded[0]["nativePMSID"]]
    assert changes_at(sb, http, token, 3).status_code == 400


def test_search_reservation_summaries(sb, http):
    token = get_token(sb, http)["authorizationHeaderValue"]
    s, e = TODAY, TODAY + 60 * DAY
    spec = {"unitNativePMSIDs": ["1020-102"],
            "stayDateRangeSearchSpecification": {"dateRange": {"startDate": s.isoformat(), "endDate": e.isoformat()},
                                                 "dateRangeSearchMethod": "Overlap"}}
    found, page = [], 1
    while True:
        data = call(sb, http, "SearchReservationSummaries", token=token,
                    body={"specification": spec, "pageSize": 3, "pageNumber": page}).json()
        if not data["results"]:
            break
        found += data["results"]
        page += 1
    assert {r["unitNativePMSID"] for r in found} == {"1020-102"}
    assert sorted(ranges_of([{"dateRange": r["stayDateRange"]} for r in found])) == \
        [(a, d) for a, d in sb.stays("1020-102") if a <= e and d > s]
    assert {r["holdType"] for r in found} == {"None", "Owner", "Maintenance"}


# -- control API -----------------------------------------------------------------------------
def test_control_api(sb, http):
    base = f"{sb.base_url}/_sandbox"
    units = http.get(f"{base}/units").json()["units"]
    assert [u["id"] for u in units] == sb.unit_ids() and units[0] == sb.unit(units[0]["id"])
    truth = http.get(f"{base}/truth", params={"unit": "ünit 9", "start": str(WIN_START), "end": str(WIN_END)})
    assert truth.json()["nights"] == [d.isoformat() for d in sorted(sb.blocked_nights("ünit 9", WIN_START, WIN_END))]
    r = http.post(f"{base}/reservations", json={"unit": "1020/7B", "start": "2027-05-01", "end": "2027-05-03",
                                                "holdType": "Maintenance"})
    assert r.status_code == 201
    rid = r.json()["id"]
    assert dt.date(2027, 5, 2) in sb.blocked_nights("1020/7B", dt.date(2027, 5, 1), dt.date(2027, 5, 3))
    assert http.delete(f"{base}/reservations/{rid}").status_code == 200
    assert http.delete(f"{base}/reservations/{rid}").status_code == 404
    assert not sb.blocked_nights("1020/7B", dt.date(2027, 5, 1), dt.date(2027, 5, 3))
    assert http.post(f"{base}/reservations", json={"unit": "x", "start": "2027-05-01", "end": "2027-05-03"}).status_code == 404
    assert http.post(f"{base}/faults", json={"unit": "1020-101", "status": 502}).status_code == 200
    assert http.post(f"{base}/faults", json={"op": "ListPmcs", "status": 429, "retryAfter": 3}).status_code == 200
    token = get_token(sb, http)["authorizationHeaderValue"]
    assert nonavail(sb, http, "1020-101", token=token).status_code == 502
    pmcs = call(sb, http, "ListPmcs", token=token)
    assert pmcs.status_code == 429 and pmcs.headers["Retry-After"] == "3"
    assert http.delete(f"{base}/faults").status_code == 200
    assert nonavail(sb, http, "1020-101", token=token).status_code == 200
    counts = http.get(f"{base}/requests").json()
    assert counts["byOp"]["GetUnitNonAvailability"] == 2 and counts["total"] == sb.request_count()
    assert http.delete(f"{base}/tokens").status_code == 200
    assert call(sb, http, "ListPmcs", token=token).status_code == 401
    assert http.get(f"{base}/nope").status_code == 404
