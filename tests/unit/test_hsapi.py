"""HsapiSource against a recorded-looking HSAPI served by ``responses``.

Payloads follow /work/shared/escapia/hsapi-openapi-extract.json (TokenCreationResult,
PagedSearchResults_UnitSummary, NonAvailability[]), including the ``"$id"`` keys the
real service adds. Time is injected with ``now=``, waits with ``sleep=``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import stat

import pytest
import requests
import responses

from escapia_ical import __version__
from escapia_ical.config import HsapiAccount, HttpPolicy
from escapia_ical.errors import AuthError, SourceError, UnitNotFound
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources.hsapi import HsapiSource
from escapia_ical.sources.http import HttpStatusError, TransportError

BASE = "https://hsapi.test/dragomanadapter"
TOKEN_URL = f"{BASE}/hsapi/auth/token"
UNITS_URL = f"{BASE}/hsapi/SearchUnitSummaries"
NONAV_URL = f"{BASE}/hsapi/GetUnitNonAvailability"
SECRET = "s3cr3t-value"

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
TOKEN_EXPIRES = "2026-05-01T13:00:00Z"  # one hour after NOW

UNIT = Unit(id="47110", name="Ocean View 1", code="OV1")
WINDOW = FeedWindow(dt.date(2026, 4, 24), dt.date(2028, 4, 30))
D = dt.date


# -- payloads -------------------------------------------------------------------------


def token_payload(token_id: str = "6f1c2a4e-93b1-4d7e-9c55-0b1e2f3a4d5c",
                  expiration: str | None = TOKEN_EXPIRES, *, header: bool = True) -> dict:
    """A TokenCreationResult as HSAPI answers it."""
    encoded = base64.b64encode(token_id.encode()).decode()
    body = {"$id": "1", "expiration": expiration, "id": token_id, "encodedId": encoded}
    if header:
        body["authorizationHeaderValue"] = f"Bearer {encoded}"
    return body


def bearer_of(payload: dict) -> str:
    return f"Bearer {payload['encodedId']}"


TOKEN_A = token_payload("6f1c2a4e-93b1-4d7e-9c55-0b1e2f3a4d5c")
TOKEN_B = token_payload("0c9d8e7f-1a2b-4c3d-8e9f-a0b1c2d3e4f5")


def unit_summary(native_id, code: str, name: str | None = None, **extra) -> dict:
    """A UnitSummary with the keys a real answer carries besides the ones we read."""
    summary = {
        "$id": f"u{code}", "code": code, "headline": f"{code} headline", "sleeps": 6.0,
        "bedrooms": 2.0, "bathrooms": 2.0, "available": True, "id": 900 + len(code),
        "pmcid": "1020", "nativePMSID": native_id,
        "detailURL": f"https://example.test/units/{code}",
        "bedGroups": [{"$id": "b1", "beds": [{"$id": "b2", "type": "King", "count": 1}]}],
    }
    if name is not None:
        summary["name"] = name
    summary.update(extra)
    return summary


def unit_page(results: list, total: int | None, page_number: int = 1) -> dict:
    """A PagedSearchResults_UnitSummary."""
    from_index = (page_number - 1) * 2
    return {"$id": "1", "results": results, "totalCount": total, "pageSize": 100,
            "pageNumber": page_number, "fromIndex": from_index,
            "toIndex": from_index + len(results) - 1}


def nonav(*pairs: tuple[str, str], **extra) -> list[dict]:
    """A NonAvailability array: one item per (startDate, endDate)."""
    return [{"$id": str(i + 2), "dateRange": {"$id": f"d{i}", "startDate": s, "endDate": e}, **extra}
            for i, (s, e) in enumerate(pairs)]


def make_account(**overrides) -> HsapiAccount:
    fields = dict(name="acme", pmcid="1020", client_id="cid", client_secret=SECRET, base_url=BASE,
                  http=HttpPolicy(retry_attempts=4, retry_initial_wait=0.5, retry_max_wait=30))
    return HsapiAccount(**{**fields, **overrides})


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def make_source(state_dir, waits):
    """Build an HsapiSource over the shared state_dir; ``at`` fixes its clock."""
    def make(account: HsapiAccount | None = None, *, at: dt.datetime = NOW) -> HsapiSource:
        return HsapiSource(account or make_account(), state_dir, sleep=waits.append, now=lambda: at)

    return make


@pytest.fixture
def token_path(state_dir):
    return state_dir / "accounts" / "acme" / "token.json"


def calls_to(rsps, url: str) -> list:
    return [c for c in rsps.calls if c.request.url.split("?")[0] == url]


def body_of(call) -> dict:
    return json.loads(call.request.body)


def add_token(rsps, *payloads: dict, status: int = 200) -> None:
    for payload in payloads or (TOKEN_A,):
        rsps.add(responses.GET, TOKEN_URL, json=payload, status=status)


def add_one_unit_page(rsps) -> None:
    rsps.add(responses.POST, UNITS_URL, json=unit_page([unit_summary("47110", "OV1", "Ocean View 1")], 1))


# -- headers and authentication ---------------------------------------------------------


def test_every_data_call_carries_the_hsapi_headers_and_bearer(rsps, make_source):
    add_token(rsps)
    add_one_unit_page(rsps)
    rsps.add(responses.POST, NONAV_URL, json=nonav(("2026-05-01", "2026-05-04")))
    source = make_source()

    source.list_units()
    list(source.calendar(UNIT, WINDOW).ranges)

    data_calls = calls_to(rsps, UNITS_URL) + calls_to(rsps, NONAV_URL)
    assert len(data_calls) == 2
    for call in data_calls:
        headers = call.request.headers
        assert headers["x-homeaway-hasp-api-version"] == "10"
        assert headers["x-homeaway-hasp-api-endsystem"] == "EscapiaVRS"
        assert headers["x-homeaway-hasp-api-pmcid"] == "1020"
        assert headers["Authorization"] == bearer_of(TOKEN_A)
        assert headers["User-Agent"] == f"escapia-ical/{__version__}"
        assert headers["Content-Type"] == "application/json"
        assert call.request.method == "POST"


def test_pmcid_header_follows_the_account(rsps, make_source):
    add_token(rsps)
    add_one_unit_page(rsps)
    make_source(make_account(pmcid="2077")).list_units()
    assert calls_to(rsps, UNITS_URL)[0].request.headers["x-homeaway-hasp-api-pmcid"] == "2077"


def test_token_call_uses_basic_auth_with_client_id_and_secret(rsps, make_source):
    add_token(rsps)
    add_one_unit_page(rsps)

    make_source().list_units()

    (token_call,) = calls_to(rsps, TOKEN_URL)
    assert token_call.request.method == "GET"
    scheme, _, encoded = token_call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"cid:{SECRET}"
    assert token_call.request.headers["User-Agent"] == f"escapia-ical/{__version__}"


def test_bearer_falls_back_to_encoded_id_without_authorization_header_value(rsps, make_source):
    add_token(rsps, token_payload("abc-123", header=False))
    add_one_unit_page(rsps)

    make_source().list_units()

    expected = "Bearer " + base64.b64encode(b"abc-123").decode()
    assert calls_to(rsps, UNITS_URL)[0].request.headers["Authorization"] == expected


def test_token_answer_without_any_bearer_is_a_source_error(rsps, make_source):
    rsps.add(responses.GET, TOKEN_URL, json={"$id": "1", "expiration": TOKEN_EXPIRES, "id": "x"})
    add_one_unit_page(rsps)
    with pytest.raises(SourceError, match="holds no usable token"):
        make_source().list_units()
    assert calls_to(rsps, UNITS_URL) == []


# -- token cache ----------------------------------------------------------------------------


def test_one_instance_fetches_one_token_for_all_its_calls(rsps, make_source):
    add_token(rsps, TOKEN_A, TOKEN_B)
    add_one_unit_page(rsps)
    rsps.add(responses.POST, NONAV_URL, json=[])
    source = make_source()

    source.list_units()
    list(source.calendar(UNIT, WINDOW).ranges)
    list(source.calendar(UNIT, WINDOW).ranges)

    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert source.requests_by_operation == {"auth/token": 1, "SearchUnitSummaries": 1,
                                            "GetUnitNonAvailability": 2}


def test_two_instances_over_one_state_dir_share_one_token(rsps, make_source):
    add_token(rsps, TOKEN_A, TOKEN_B)
    add_one_unit_page(rsps)

    make_source().list_units()
    second = make_source()
    second.list_units()

    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert [c.request.headers["Authorization"] for c in calls_to(rsps, UNITS_URL)] == [
        bearer_of(TOKEN_A), bearer_of(TOKEN_A)]
    assert "auth/token" not in second.requests_by_operation


def test_token_file_is_0600_and_holds_no_credentials(rsps, make_source, token_path):
    add_token(rsps)
    add_one_unit_page(rsps)

    make_source().list_units()

    assert token_path.is_file()
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_path.parent.stat().st_mode) == 0o700
    text = token_path.read_text()
    assert SECRET not in text
    assert base64.b64encode(f"cid:{SECRET}".encode()).decode() not in text
    stored = json.loads(text)
    assert stored["authorization"] == bearer_of(TOKEN_A)
    assert dt.datetime.fromisoformat(stored["expiration"]) == dt.datetime(
        2026, 5, 1, 13, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("later", "new_token"),
    [
        (dt.timedelta(minutes=58, seconds=59), False),  # 61 s left: still usable
        (dt.timedelta(minutes=59, seconds=1), True),  # 59 s left: inside the 60 s margin
        (dt.timedelta(hours=2), True),  # long expired
    ],
    ids=["61s-left", "59s-left", "expired"],
)
def test_cached_token_is_reused_until_sixty_seconds_before_expiry(
    rsps, make_source, later, new_token
):
    add_token(rsps, TOKEN_A, TOKEN_B)
    add_one_unit_page(rsps)

    make_source(at=NOW).list_units()
    make_source(at=NOW + later).list_units()

    assert len(calls_to(rsps, TOKEN_URL)) == (2 if new_token else 1)
    expected = TOKEN_B if new_token else TOKEN_A
    assert calls_to(rsps, UNITS_URL)[-1].request.headers["Authorization"] == bearer_of(expected)


def test_expired_token_is_replaced_in_the_cache(rsps, make_source, token_path):
    add_token(rsps, TOKEN_A, token_payload("0c9d8e7f", expiration="2026-05-01T16:00:00Z"))
    add_one_unit_page(rsps)

    make_source(at=NOW).list_units()
    make_source(at=NOW + dt.timedelta(hours=2)).list_units()
    make_source(at=NOW + dt.timedelta(hours=3)).list_units()  # uses the replacement

    assert len(calls_to(rsps, TOKEN_URL)) == 2
    stored = json.loads(token_path.read_text())
    assert stored["expiration"].startswith("2026-05-01T16:00:00")


@pytest.mark.parametrize("changed", [{"client_secret": "rotated-secret"}, {"client_id": "other-cid"},
                                     {"base_url": "https://hsapi2.test/dragomanadapter"}],
                         ids=["secret", "client_id", "base_url"])
def test_token_cached_for_other_credentials_is_not_reused(rsps, make_source, changed):
    add_token(rsps, TOKEN_A)
    add_one_unit_page(rsps)
    other_base = changed.get("base_url", BASE)
    if other_base != BASE:
        rsps.add(responses.GET, f"{other_base}/hsapi/auth/token", json=TOKEN_B)
        rsps.add(responses.POST, f"{other_base}/hsapi/SearchUnitSummaries",
                 json=unit_page([unit_summary("47110", "OV1", "Ocean View 1")], 1))
    else:
        add_token(rsps, TOKEN_B)

    make_source().list_units()
    make_source(make_account(**changed)).list_units()

    token_calls = [c for c in rsps.calls if c.request.url.endswith("/hsapi/auth/token")]
    assert len(token_calls) == 2
    scheme, _, encoded = token_calls[1].request.headers["Authorization"].partition(" ")
    expected_id = changed.get("client_id", "cid")
    expected_secret = changed.get("client_secret", SECRET)
    assert base64.b64decode(encoded).decode() == f"{expected_id}:{expected_secret}"
    data_calls = [c for c in rsps.calls if c.request.url.endswith("/SearchUnitSummaries")]
    assert data_calls[1].request.headers["Authorization"] == bearer_of(TOKEN_B)


def test_unreadable_token_file_means_a_new_token(rsps, make_source, token_path):
    token_path.parent.mkdir(parents=True)
    token_path.write_text("{not json")
    add_token(rsps)
    add_one_unit_page(rsps)

    make_source().list_units()

    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert json.loads(token_path.read_text())["authorization"] == bearer_of(TOKEN_A)


def test_token_without_expiration_is_used_but_not_cached(rsps, make_source, token_path):
    add_token(rsps, token_payload("first", expiration=None), token_payload("second", expiration="soon"))
    add_one_unit_page(rsps)

    make_source().list_units()
    make_source().list_units()

    assert not token_path.exists()
    assert len(calls_to(rsps, TOKEN_URL)) == 2
    first, second = (c.request.headers["Authorization"] for c in calls_to(rsps, UNITS_URL))
    assert first == bearer_of(token_payload("first")) and second == bearer_of(token_payload("second"))


# -- 401 handling ---------------------------------------------------------------------------


def test_401_on_a_data_call_fetches_one_new_token_and_retries_once(rsps, make_source, token_path):
    add_token(rsps, TOKEN_A, TOKEN_B)
    add_one_unit_page(rsps)
    make_source().list_units()  # caches TOKEN_A
    rsps.calls.reset()
    rsps.replace(responses.POST, UNITS_URL, status=401, json={"message": "Unauthorized"})
    add_one_unit_page(rsps)

    units = make_source().list_units()

    assert [u.id for u in units] == ["47110"]
    assert len(calls_to(rsps, TOKEN_URL)) == 1
    data = calls_to(rsps, UNITS_URL)
    assert [c.request.headers["Authorization"] for c in data] == [bearer_of(TOKEN_A), bearer_of(TOKEN_B)]
    assert body_of(data[0]) == body_of(data[1])
    assert json.loads(token_path.read_text())["authorization"] == bearer_of(TOKEN_B)


def test_second_401_is_an_auth_error(rsps, make_source, waits):
    add_token(rsps, TOKEN_A, TOKEN_B, TOKEN_B)
    rsps.add(responses.POST, NONAV_URL, status=401)

    with pytest.raises(AuthError, match="GetUnitNonAvailability"):
        list(make_source().calendar(UNIT, WINDOW).ranges)

    assert len(calls_to(rsps, TOKEN_URL)) == 2  # the first token and one refresh
    assert len(calls_to(rsps, NONAV_URL)) == 2
    assert waits == []


@pytest.mark.parametrize("status", [401, 403])
def test_token_endpoint_refusal_is_an_auth_error_without_the_secret(rsps, make_source, waits,
                                                                   token_path, status):
    rsps.add(responses.GET, TOKEN_URL, status=status, json={"message": f"bad credentials {SECRET}"})
    add_one_unit_page(rsps)

    with pytest.raises(AuthError) as caught:
        make_source().list_units()

    assert SECRET not in str(caught.value)
    assert "cid" not in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert calls_to(rsps, UNITS_URL) == []
    assert waits == []
    assert not token_path.exists()


def test_5xx_on_a_data_call_is_retried_with_the_same_token(rsps, make_source, waits):
    add_token(rsps, TOKEN_A, TOKEN_B)
    rsps.add(responses.POST, UNITS_URL, status=503)
    add_one_unit_page(rsps)

    make_source().list_units()

    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert len(calls_to(rsps, UNITS_URL)) == 2
    assert len(waits) == 1


# -- list_units ------------------------------------------------------------------------------


def test_list_units_walks_every_page_in_order(rsps, make_source):
    add_token(rsps)
    for number, results in enumerate([
        [unit_summary("101", "A1", "Alpha"), unit_summary("102", "A2", "Bravo")],
        [unit_summary("103", "B1", "Charlie"), unit_summary("104", "B2", "Delta")],
        [unit_summary("105", "C1", "Echo")],
    ], start=1):
        rsps.add(responses.POST, UNITS_URL, json=unit_page(results, 5, number))
    rsps.add(responses.POST, UNITS_URL, json=unit_page([], 5, 4))  # must not be asked

    units = make_source().list_units()

    assert units == [Unit("101", "Alpha", "A1"), Unit("102", "Bravo", "A2"), Unit("103", "Charlie", "B1"),
                     Unit("104", "Delta", "B2"), Unit("105", "Echo", "C1")]
    bodies = [body_of(c) for c in calls_to(rsps, UNITS_URL)]
    assert [b["pageNumber"] for b in bodies] == [1, 2, 3]
    assert {b["pageSize"] for b in bodies} == {250}  # Escapia answers far larger pages (API-NOTES)
    assert bodies[0]["specification"] == {"returnUnavailableUnits": True,
                                          "sortingMethod": "UnitCodeAlphabetical"}


def test_list_units_without_total_count_stops_at_an_empty_page(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([unit_summary("101", "A1", "Alpha")], None, 1))
    rsps.add(responses.POST, UNITS_URL, json=unit_page([], None, 2))

    assert [u.id for u in make_source().list_units()] == ["101"]
    assert [body_of(c)["pageNumber"] for c in calls_to(rsps, UNITS_URL)] == [1, 2]


def test_an_empty_page_before_total_count_is_an_incomplete_listing(rsps, make_source):
    """Units past an early empty page would be taken as no longer distributed (retired)."""
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([unit_summary("101", "A1", "Alpha"),
                                                        unit_summary("102", "A2", "Bravo")], 5, 1))
    rsps.add(responses.POST, UNITS_URL, json=unit_page([], 5, 2))

    with pytest.raises(SourceError, match="page 2 is empty but totalCount is 5 and 2 were listed"):
        make_source().list_units()


def test_a_server_repeating_a_page_is_a_source_error_not_a_loop(rsps, make_source):
    add_token(rsps)
    same = unit_page([unit_summary("101", "A1", "Alpha"), unit_summary("102", "A2", "Bravo")], 5, 1)
    rsps.add(responses.POST, UNITS_URL, json=same)  # repeats for every pageNumber

    with pytest.raises(SourceError, match="page 2 repeats units"):
        make_source().list_units()

    assert len(calls_to(rsps, UNITS_URL)) == 2


def test_empty_results_give_an_empty_list(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([], 0, 1))

    assert make_source().list_units() == []
    assert len(calls_to(rsps, UNITS_URL)) == 1


def test_summaries_without_native_pms_id_are_skipped_with_a_warning(rsps, make_source, caplog):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([
        unit_summary("101", "A1", "Alpha"),
        unit_summary(None, "NOID", "No id"),
        {k: v for k, v in unit_summary("x", "MISSING", "Missing").items() if k != "nativePMSID"},
        unit_summary("", "EMPTY", "Empty"),
        unit_summary("105", "C1", "Echo"),
    ], 5, 1))

    with caplog.at_level(logging.WARNING, logger="escapia_ical.sources.hsapi"):
        units = make_source().list_units()

    assert [u.id for u in units] == ["101", "105"]
    assert len(calls_to(rsps, UNITS_URL)) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("NOID" in m and "nativePMSID" in m for m in messages)
    assert any("MISSING" in m for m in messages)


def test_skipped_summaries_on_an_earlier_page_still_count_toward_total(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page(
        [unit_summary("101", "A1", "Alpha"), unit_summary(None, "NOID", "No id")], 3, 1))
    rsps.add(responses.POST, UNITS_URL, json=unit_page([unit_summary("103", "B1", "Charlie")], 3, 2))
    rsps.add(responses.POST, UNITS_URL, json=unit_page([], 3, 3))

    units = make_source().list_units()

    assert [u.id for u in units] == ["101", "103"]
    assert len(calls_to(rsps, UNITS_URL)) == 2  # totalCount 3 = 2 units + 1 skipped: done


def test_integer_native_pms_id_becomes_a_string(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([unit_summary(47110, "OV1", "Ocean View 1")], 1))

    (unit,) = make_source().list_units()

    assert unit.id == "47110"
    assert isinstance(unit.id, str)


def test_unit_name_falls_back_to_headline_then_code_then_id(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=unit_page([
        unit_summary("101", "A1", "  Alpha House  "),
        unit_summary("102", "A2", None, headline="Bravo by the sea"),
        unit_summary("103", "A3", "   ", headline=""),
        {"$id": "u4", "nativePMSID": "104"},
    ], 4, 1))

    units = make_source().list_units()

    assert units == [Unit("101", "Alpha House", "A1"), Unit("102", "Bravo by the sea", "A2"),
                     Unit("103", "A3", "A3"), Unit("104", "104", "")]


def test_unknown_keys_are_ignored(rsps, make_source):
    add_token(rsps)
    page = unit_page([unit_summary("101", "A1", "Alpha", brandNewField={"nested": [1, 2]},
                                   unitHousekeepingStatusType={"$id": "h", "name": "Clean"})], 1)
    page["somethingNew"] = "ignored"
    rsps.add(responses.POST, UNITS_URL, json=page)

    assert make_source().list_units() == [Unit("101", "Alpha", "A1")]


@pytest.mark.parametrize("body", [[], {"$id": "1", "totalCount": 0}, {"results": None}, "nope"])
def test_unit_page_without_a_results_list_is_a_source_error(rsps, make_source, body):
    add_token(rsps)
    rsps.add(responses.POST, UNITS_URL, json=body)
    with pytest.raises(SourceError, match="SearchUnitSummaries: expected an object with a 'results' list"):
        make_source().list_units()


# -- blocked_ranges -------------------------------------------------------------------------


@pytest.fixture
def fetch(rsps, make_source):
    """Serve ``body`` (JSON-encoded unless bytes) and return blocked_ranges of UNIT."""
    add_token(rsps)

    def run(body, *, end_date: str = "exclusive", status: int = 200) -> list[BlockedRange]:
        kwargs = {"body": body} if isinstance(body, bytes) else {"json": body}
        rsps.add(responses.POST, NONAV_URL, status=status, **kwargs)
        run.source = make_source(make_account(end_date=end_date))
        return list(run.source.calendar(UNIT, WINDOW).ranges)

    return run


def test_nonavailability_request_body_has_window_and_unit(rsps, fetch):
    fetch([])

    (call,) = calls_to(rsps, NONAV_URL)
    assert body_of(call) == {"dateRange": {"startDate": "2026-04-24", "endDate": "2028-04-30"},
                             "nativePMSUnitID": "47110"}


def test_end_date_is_exclusive_by_default(fetch):
    assert fetch(nonav(("2026-05-01", "2026-05-04"), ("2026-06-10", "2026-06-17"))) == [
        BlockedRange(D(2026, 5, 1), D(2026, 5, 4)), BlockedRange(D(2026, 6, 10), D(2026, 6, 17))]


def test_inclusive_end_date_adds_one_day(fetch):
    assert fetch(nonav(("2026-05-01", "2026-05-04")), end_date="inclusive") == [
        BlockedRange(D(2026, 5, 1), D(2026, 5, 5))]


@pytest.mark.parametrize("end_date", ["exclusive", "inclusive"])
def test_start_equal_to_end_is_one_night_in_both_modes(fetch, end_date):
    assert fetch(nonav(("2026-05-01", "2026-05-01")), end_date=end_date) == [
        BlockedRange(D(2026, 5, 1), D(2026, 5, 2))]


def test_end_before_start_fails_the_unit_rather_than_dropping_a_block(fetch):
    with pytest.raises(SourceError, match=r"item 1 ends \(2026-05-08\) before it starts .*unclear"):
        fetch(nonav(("2026-05-01", "2026-05-04"), ("2026-05-10", "2026-05-08"), ("2026-05-20", "2026-05-22")))


# -- odd NonAvailability items (the contract requires no field; Json.NET references) ----


def test_items_without_a_date_range_or_null_block_nothing_and_are_noted(fetch, caplog):
    body = [*nonav(("2026-05-01", "2026-05-04")), {"$id": "9"}, None, {"$id": "10", "dateRange": None}]
    with caplog.at_level(logging.DEBUG):
        assert fetch(body) == [BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]
    assert fetch.source.notes.lines() == [
        "3 NonAvailability items without a dateRange (no block) (1 unit; first: 47110 item 1 has no dateRange)"]
    assert any("item 2 is null" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_a_json_net_ref_repeats_an_earlier_item_or_date_range(fetch):
    body = [*nonav(("2026-05-01", "2026-05-04"), ("2026-06-01", "2026-06-03")),
            {"$ref": "3"}, {"$id": "20", "dateRange": {"$ref": "d0"}}]
    assert fetch(body) == [BlockedRange(D(2026, 5, 1), D(2026, 5, 4)), BlockedRange(D(2026, 6, 1), D(2026, 6, 3)),
                           BlockedRange(D(2026, 6, 1), D(2026, 6, 3)), BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]


def test_an_unresolvable_ref_fails_the_unit(fetch):
    with pytest.raises(SourceError, match=r"item 1: \$ref '77' names no object of the answer"):
        fetch([*nonav(("2026-05-01", "2026-05-04")), {"$ref": "77"}])


def test_dotnet_datetimes_are_dates(fetch):
    assert fetch(nonav(("2026-05-01T00:00:00", "2026-05-04T00:00:00"))) == [
        BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]


@pytest.mark.parametrize("pair", [("2026-05-01", "0001-01-01T00:00:00"), ("0001-01-01", "2026-05-04")])
def test_the_dotnet_empty_date_fails_the_unit(fetch, pair):
    with pytest.raises(SourceError, match=r"\.NET's empty date \(0001-01-01\): the calendar is unclear"):
        fetch(nonav(("2026-04-28", "2026-04-30"), pair))


@pytest.mark.parametrize("item", [7, "x", [], {"$id": "9", "dateRange": "2026-05-01"}])
def test_items_of_another_kind_fail_the_unit(fetch, item):
    with pytest.raises(SourceError, match="item 0"):
        fetch([item])


def test_a_server_ignoring_the_dates_asked_costs_one_line_per_run_not_one_per_range(fetch, caplog):
    far = [(f"{1990 + i // 300}-01-{1 + i % 28:02d}", f"{1990 + i // 300}-02-01") for i in range(3000)]
    with caplog.at_level(logging.DEBUG):
        ranges = fetch(nonav(*far, ("2026-05-01", "2026-05-04")))
    assert ranges == [BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]
    assert not [r for r in caplog.records if "1990" in r.getMessage()]
    assert fetch.source.notes.lines() == [
        "3000 ranges ignored: outside the dates asked for (1 unit; first: 47110 1990-01-01..1990-02-01)"]


def test_unknown_keys_and_guest_data_in_items_are_ignored(fetch):
    body = nonav(("2026-05-01", "2026-05-04"), reservationId="R-1001", holdType="Owner",
                 guest={"$id": "g", "firstName": "Ada", "lastName": "Lovelace",
                        "email": "ada@example.test", "phone": "+1 555 0100"})
    assert fetch(body) == [BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]


def test_midnight_datetime_strings_are_accepted(fetch):
    assert fetch(nonav(("2026-05-01T00:00:00", "2026-05-04T00:00:00"))) == [
        BlockedRange(D(2026, 5, 1), D(2026, 5, 4))]


def test_empty_array_means_no_ranges(fetch):
    assert fetch([]) == []


@pytest.mark.parametrize("body", [{"$id": "1", "results": []}, b"null", "2026-05-01"],
                         ids=["object", "null", "string"])
def test_nonavailability_not_an_array_is_a_source_error(fetch, body):
    with pytest.raises(SourceError, match=r"GetUnitNonAvailability for unit '47110': expected a JSON array"):
        fetch(body)


@pytest.mark.parametrize("item", [
    {"$id": "2", "dateRange": {"endDate": "2026-05-04"}},
    {"$id": "2", "dateRange": {"startDate": "2026-05-01"}},
    {"$id": "2", "dateRange": {"startDate": 20260501, "endDate": "2026-05-04"}},
    {"$id": "2", "dateRange": {"startDate": "05/01/2026", "endDate": "2026-05-04"}},
    {"$id": "2", "dateRange": {"startDate": "2026-05-01T14:00:00", "endDate": "2026-05-04"}},
    "2026-05-01",
], ids=["no-startDate", "no-endDate", "int-date", "us-date",
        "time-of-day", "string-item"])
def test_unusable_item_is_a_source_error(fetch, item):
    with pytest.raises(SourceError, match="GetUnitNonAvailability for unit '47110': item 1"):
        fetch([nonav(("2026-04-01", "2026-04-03"))[0], item])


def test_malformed_json_is_a_source_error(fetch):
    with pytest.raises(SourceError, match="GetUnitNonAvailability: answer is not valid JSON"):
        fetch(b'[{"dateRange": {"startDate": "2026-05-01", ')


def test_404_is_unit_not_found_and_not_retried(rsps, fetch, waits):
    with pytest.raises(UnitNotFound, match="unit '47110'"):
        fetch({"message": "Not Found"}, status=404)
    assert len(calls_to(rsps, NONAV_URL)) == 1
    assert waits == []


@pytest.mark.parametrize("status", [400, 403])
def test_other_4xx_on_nonavailability_are_http_status_errors(rsps, fetch, status):
    with pytest.raises(HttpStatusError) as caught:
        fetch({"message": "no"}, status=status)
    assert not isinstance(caught.value, UnitNotFound)
    assert caught.value.status == status
    assert len(calls_to(rsps, NONAV_URL)) == 1


def test_timeouts_on_nonavailability_end_in_transport_error(rsps, make_source, waits):
    add_token(rsps)
    rsps.add(responses.POST, NONAV_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(TransportError):
        list(make_source().calendar(UNIT, WINDOW).ranges)

    assert len(calls_to(rsps, NONAV_URL)) == 4
    assert len(waits) == 3
    assert all(c.request.req_kwargs["timeout"] == (5.0, 30.0) for c in calls_to(rsps, NONAV_URL))


# -- the change feed ------------------------------------------------------------------------


def change_feed(rsps, current: int, *, future: str = "empty") -> list[int]:
    """Serve a change feed whose latest version is ``current``; return the versions asked."""
    asked = []

    def answer(request):
        start = int(request.params["startVersion"])
        asked.append(start)
        if start > current and future == "reject":
            return 400, {}, json.dumps({"message": "unknown version"})
        end = min(current, start + 100) if start < current else start
        changes = [{"nativePMSID": f"r{v}", "changeType": "Update"} for v in range(start + 1, end + 1)]
        return 200, {}, json.dumps({"startVersion": start, "endVersion": end, "changes": changes})

    rsps.add_callback(responses.GET, f"{BASE}/hsapi/GetReservationChanges", callback=answer)
    return asked


@pytest.mark.parametrize("future", ["empty", "reject"])
@pytest.mark.parametrize("current", [0, 5, 1024, 1025, 555_600])
def test_recent_version_never_overshoots_and_stays_cheap(rsps, make_source, current, future):
    add_token(rsps)
    asked = change_feed(rsps, current, future=future)
    version = make_source().recent_version()
    assert version <= current and current - version <= 200
    assert len(asked) <= 2 * max(1, current).bit_length() + 4
    ids, end = make_source().changes_since(version)
    assert end == current and len(ids) == current - version


def test_changes_since_reads_until_nothing_is_left(rsps, make_source):
    add_token(rsps)
    asked = change_feed(rsps, 250)
    ids, end = make_source().changes_since(0)
    assert (end, len(ids), asked) == (250, 250, [0, 100, 200, 250])


# -- work orders in the reservations view -------------------------------------------------

SEARCH_RES_URL = f"{BASE}/hsapi/SearchReservationSummaries"
SEARCH_WO_URL = f"{BASE}/hsapi/SearchWorkOrders"


def work_order_json(order_id: str, start: str, end: str, status: str = "Scheduled") -> dict:
    """A WorkOrder as Json.NET sends it (with detail the client must not keep)."""
    return {"$id": "2", "unit": {"$id": "3", "nativePMSID": UNIT.id, "name": "x"}, "nativePMSID": order_id,
            "status": status, "workOrderRemovesUnitFromAvailability": True, "vendorName": "Plumber",
            "startDateWhenUnitIsRemovedFromAvailability": f"{start}T00:00:00",
            "endDateWhenUnitIsRemovedFromAvailability": f"{end}T00:00:00", "actualCost": 120.0}


NIGHTS = [(D(2026, 5, 1), D(2026, 5, 11))]


def test_the_view_counts_open_work_orders_as_booked(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, SEARCH_RES_URL, json={"results": [], "totalCount": 0})
    rsps.add(responses.POST, SEARCH_WO_URL, json={"$id": "1", "totalCount": 1, "results": [
        work_order_json("7001", "2026-05-03", "2026-05-04")]})
    explained = make_source(make_account()).explain(UNIT, NIGHTS)
    # The end date read inclusively: nights 3 and 4 may be booked.
    assert explained.booked == ((D(2026, 5, 3), D(2026, 5, 5)),)
    assert explained.free == ((D(2026, 5, 1), D(2026, 5, 3)), (D(2026, 5, 5), D(2026, 5, 11)))
    assert body_of(calls_to(rsps, SEARCH_WO_URL)[0])["nativeUnitID"] == UNIT.id


def test_without_the_grant_the_view_vouches_for_no_free_night(rsps, make_source):
    add_token(rsps)
    rsps.add(responses.POST, SEARCH_RES_URL, json={"results": [], "totalCount": 0})
    rsps.add(responses.POST, SEARCH_WO_URL, status=403, json={"message": "Forbidden"})
    explained = make_source(make_account()).explain(UNIT, NIGHTS)
    assert explained.free == () and explained.booked == () and "not readable" in explained.view
