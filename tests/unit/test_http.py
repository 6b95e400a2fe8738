"""HttpClient: timeouts, retries (tenacity), Retry-After, counting; parse_retry_after.

Every test injects ``sleep=waits.append``: the waits the client asks for are recorded and
asserted, and nothing ever sleeps for real. HTTP is served by ``responses``.
"""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
import requests
import responses

from escapia_ical import __version__
from escapia_ical.config import HttpPolicy
from escapia_ical.errors import SourceError
from escapia_ical.sources.http import (
    HttpClient,
    HttpStatusError,
    OversizedAnswer,
    TransportError,
    parse_retry_after,
)

URL = "https://hsapi.test/dragomanadapter/hsapi/SearchUnitSummaries"
OP = "SearchUnitSummaries"
OK_BODY = {"$id": "1", "results": [], "totalCount": 0, "pageSize": 100, "pageNumber": 1}


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def make_client(waits):
    def make(**policy) -> HttpClient:
        defaults = dict(retry_attempts=4, retry_initial_wait=0.5, retry_max_wait=30)
        return HttpClient(HttpPolicy(**{**defaults, **policy}), sleep=waits.append)

    return make


def add_statuses(rsps, *statuses: int, headers: dict | None = None) -> None:
    """Answer successive POSTs to URL with these statuses (the last one repeats)."""
    for status in statuses:
        body = OK_BODY if status == 200 else {"message": "Service Unavailable"}
        rsps.add(responses.POST, URL, json=body, status=status, headers=headers or {})


def post(client: HttpClient):
    return client.request("POST", URL, operation=OP, json={"pageNumber": 1, "pageSize": 100})


# -- success, timeouts, User-Agent --------------------------------------------------------


def test_success_returns_status_headers_and_body(rsps, make_client, waits):
    add_statuses(rsps, 200)
    client = make_client()

    result = post(client)

    assert result.status == 200
    assert result.headers["Content-Type"] == "application/json"
    assert result.body == b'{"$id": "1", "results": [], "totalCount": 0, "pageSize": 100, "pageNumber": 1}'
    assert len(rsps.calls) == 1
    assert waits == []
    assert client.requests_by_operation == {OP: 1}
    assert client.responses_by_status == {(OP, "200"): 1}


def test_user_agent_names_the_tool_and_version(rsps, make_client):
    add_statuses(rsps, 200)
    post(make_client())
    assert rsps.calls[0].request.headers["User-Agent"] == f"escapia-ical/{__version__}"


def test_connect_and_read_timeouts_from_the_policy_are_passed(rsps, make_client):
    add_statuses(rsps, 503, 200)
    post(make_client(connect_timeout=3.5, read_timeout=12.0))

    assert len(rsps.calls) == 2
    for call in rsps.calls:  # every attempt, not only the first
        assert call.request.req_kwargs["timeout"] == (3.5, 12.0)


def test_default_policy_timeouts_are_five_and_thirty_seconds(rsps, waits):
    add_statuses(rsps, 200)
    HttpClient(HttpPolicy(), sleep=waits.append).request("POST", URL, operation=OP)
    assert rsps.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)


# -- retried failures -------------------------------------------------------------------


def test_503_503_200_succeeds_on_the_third_request_after_two_waits(rsps, make_client, waits):
    add_statuses(rsps, 503, 503, 200)
    client = make_client()

    result = post(client)

    assert result.status == 200
    assert len(rsps.calls) == 3
    assert len(waits) == 2
    assert client.requests_by_operation[OP] == 3
    assert client.responses_by_status == {(OP, "503"): 2, (OP, "200"): 1}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_retried(rsps, make_client, waits, status):
    add_statuses(rsps, status, 200)
    assert post(make_client()).status == 200
    assert len(rsps.calls) == 2
    assert len(waits) == 1


def test_persistent_503_gives_up_after_retry_attempts_with_the_status(rsps, make_client, waits):
    add_statuses(rsps, 503)
    client = make_client(retry_attempts=3)

    with pytest.raises(HttpStatusError) as caught:
        post(client)

    assert caught.value.status == 503
    assert str(caught.value) == f"{OP}: HTTP 503"
    assert len(rsps.calls) == 3
    assert len(waits) == 2  # no wait after the last attempt
    assert client.requests_by_operation[OP] == 3


def test_429_with_retry_after_seconds_waits_at_least_that_long(rsps, make_client, waits):
    rsps.add(responses.POST, URL, status=429, headers={"Retry-After": "7"},
             json={"message": "TooManyRequests"})
    add_statuses(rsps, 200)

    assert post(make_client(retry_initial_wait=0.5)).status == 200

    assert len(rsps.calls) == 2
    assert len(waits) == 1
    assert waits[0] >= 7


def test_retry_after_below_the_backoff_does_not_shorten_the_backoff(rsps, make_client, waits):
    rsps.add(responses.POST, URL, status=503, headers={"Retry-After": "0"})
    add_statuses(rsps, 200)

    post(make_client(retry_initial_wait=2, retry_max_wait=30))

    assert len(waits) == 1
    assert 2 <= waits[0] <= 4  # backoff: initial (2) plus up to initial of jitter


def test_retry_after_longer_than_retry_max_wait_is_not_retried(rsps, make_client, waits):
    rsps.add(responses.POST, URL, status=429, headers={"Retry-After": "120"})
    add_statuses(rsps, 200)  # would succeed, but must never be asked
    client = make_client(retry_max_wait=30)

    with pytest.raises(HttpStatusError) as caught:
        post(client)

    assert caught.value.status == 429
    assert caught.value.retry_after == 120
    assert len(rsps.calls) == 1
    assert waits == []
    assert client.requests_by_operation[OP] == 1


def test_retry_after_as_an_http_date_is_honoured(rsps, make_client, waits):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    rsps.add(responses.POST, URL, status=503,
             headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    add_statuses(rsps, 200)

    assert post(make_client(retry_initial_wait=0.5, retry_max_wait=30)).status == 200

    assert len(rsps.calls) == 2
    assert len(waits) == 1
    assert 18 <= waits[0] <= 20.5  # the date has whole seconds; the clock moved a little


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (requests.ConnectTimeout("connect timed out"), "timed out"),
        (requests.ReadTimeout("read timed out"), "timed out"),
        (requests.ConnectionError("connection refused"), "connection failed"),
    ],
    ids=["connect-timeout", "read-timeout", "connection-error"],
)
def test_transport_failures_are_retried_then_raise_transport_error(
    rsps, make_client, waits, error, reason
):
    rsps.add(responses.POST, URL, body=error)
    client = make_client(retry_attempts=4)

    with pytest.raises(TransportError) as caught:
        post(client)

    assert len(rsps.calls) == 4
    assert len(waits) == 3
    assert client.requests_by_operation[OP] == 4
    assert str(caught.value).startswith(f"{OP}: {reason}")
    assert isinstance(caught.value, SourceError)


def test_transport_failure_then_success(rsps, make_client, waits):
    rsps.add(responses.POST, URL, body=requests.ConnectTimeout("connect timed out"))
    add_statuses(rsps, 200)
    client = make_client()

    assert post(client).status == 200
    assert len(rsps.calls) == 2
    assert len(waits) == 1
    assert client.responses_by_status == {(OP, "timeout"): 1, (OP, "200"): 1}


# -- never retried ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_never_retried(rsps, make_client, waits, status):
    add_statuses(rsps, status, 200)
    client = make_client()

    with pytest.raises(HttpStatusError) as caught:
        post(client)

    assert caught.value.status == status
    assert len(rsps.calls) == 1
    assert waits == []
    assert client.requests_by_operation[OP] == 1


def test_retry_attempts_one_means_a_single_try(rsps, make_client, waits):
    add_statuses(rsps, 503, 200)
    with pytest.raises(HttpStatusError):
        post(make_client(retry_attempts=1))
    assert len(rsps.calls) == 1
    assert waits == []


def test_retry_attempts_one_single_try_on_timeout(rsps, make_client, waits):
    rsps.add(responses.POST, URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransportError):
        post(make_client(retry_attempts=1))
    assert len(rsps.calls) == 1
    assert waits == []


# -- backoff shape ------------------------------------------------------------------------


def test_waits_grow_exponentially_with_bounded_jitter(rsps, make_client, waits):
    add_statuses(rsps, 503)
    with pytest.raises(HttpStatusError):
        post(make_client(retry_attempts=5, retry_initial_wait=1, retry_max_wait=60))

    assert len(waits) == 4
    for n, wait in enumerate(waits):
        # initial * 2**n plus jitter in [0, initial]
        assert 2**n <= wait <= 2**n + 1, (n, waits)
    assert waits == sorted(waits)
    assert waits[-1] > 2 * waits[0]


def test_waits_never_exceed_retry_max_wait(rsps, make_client, waits):
    add_statuses(rsps, 503)
    with pytest.raises(HttpStatusError):
        post(make_client(retry_attempts=8, retry_initial_wait=1, retry_max_wait=5))

    assert len(waits) == 7
    assert max(waits) <= 5
    assert waits[-1] == 5  # 2**6 = 64 is clamped


def test_requests_by_operation_counts_every_attempt_per_operation(rsps, make_client):
    add_statuses(rsps, 503, 200)
    rsps.add(responses.GET, "https://hsapi.test/dragomanadapter/hsapi/auth/token", json={})
    client = make_client()

    post(client)
    client.request("GET", "https://hsapi.test/dragomanadapter/hsapi/auth/token", operation="auth/token")
    post(client)

    assert client.requests_by_operation == {OP: 3, "auth/token": 1}


def test_oversized_body_fails_without_retry(rsps, make_client, monkeypatch):
    monkeypatch.setattr("escapia_ical.sources.http_answers.MAX_BODY_BYTES", 64)
    rsps.add(responses.POST, URL, body=b"x" * 1000, status=200)
    with pytest.raises(OversizedAnswer, match=f"^{OP}: answer larger than 64 bytes"):
        post(make_client(retry_attempts=4))
    assert len(rsps.calls) == 1


# -- parse_retry_after ----------------------------------------------------------------------

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("value", "expected"), [("7", 7.0), ("0", 0.0), (" 120 ", 120.0)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_in_the_future():
    assert parse_retry_after("Fri, 01 May 2026 12:00:30 GMT", now=NOW) == 30.0


def test_parse_retry_after_http_date_in_the_past_is_zero():
    assert parse_retry_after("Fri, 01 May 2026 11:59:00 GMT", now=NOW) == 0.0


def test_parse_retry_after_http_date_defaults_to_the_real_clock():
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Fri, 99 Foo 2026"])
def test_parse_retry_after_garbage_is_none(value):
    assert parse_retry_after(value, now=NOW) is None
