"""HttpClient against real loopback servers: every request and wait is bounded in time,
redirects are never followed, oversized answers cost bounded memory.

Servers trickle or stall on purpose; each test asserts how long the client took (the
limit plus at most a second), so no test waits longer than its bound needs.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import responses
from loopback import RawServer, ok, trickle

from escapia_ical.config import HttpPolicy
from escapia_ical.errors import DeadlineReached
from escapia_ical.sources import http_answers, watchdog
from escapia_ical.sources.http import (
    HttpClient,
    HttpStatusError,
    OversizedAnswer,
    TransportError,
)

OP = "GetUnitNonAvailability"
SLOW = 0.3  # seconds between trickled bytes: far below any read timeout used here


def client(waits=None, **policy) -> HttpClient:
    defaults = dict(retry_attempts=1, retry_initial_wait=0, connect_timeout=5, read_timeout=5)
    return HttpClient(HttpPolicy(**{**defaults, **policy}), sleep=None if waits is None else waits.append)


def timed(call):
    """Return (the exception ``call()`` raised, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        call()
    return caught.value, time.monotonic() - started


@pytest.fixture
def servers():
    started: list[RawServer] = []

    def start(answer=None, **kw) -> RawServer:
        started.append(RawServer(answer, **kw))
        return started[-1]

    yield start
    for server in started:
        server.close()


# -- the total limit -----------------------------------------------------------------------


@pytest.mark.parametrize("part", ["status line", "body", "body without length"])
def test_a_trickled_answer_ends_within_the_total_limit(servers, part):
    answer = ok(b'{"padding": "' + b"x" * 1000 + b'"}')
    if part == "body without length":  # ends when the connection closes: a cut looks complete
        answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1000
    split = 0 if part == "status line" else answer.index(b"\r\n\r\n") + 4

    def send(conn, head, n):
        conn.sendall(answer[:split])
        trickle(conn, answer[split:], SLOW, server.closing)

    server = servers(send)
    http = client(total_timeout=1.5, read_timeout=2)

    error, took = timed(lambda: http.request("GET", server.url, operation=OP))

    assert isinstance(error, TransportError)
    assert str(error) == f"{OP}: no complete answer within 1.5 s"
    assert 1.4 <= took <= 2.5
    assert http.responses_by_status == {(OP, "timeout"): 1}


def test_a_reused_keep_alive_connection_is_bounded_too(servers):
    def send(conn, head, n):
        if n == 0:
            conn.sendall(ok())
        else:
            trickle(conn, ok(b"[" + b" " * 100 + b"]"), SLOW, server.closing)

    server = servers(send)
    http = client(total_timeout=1)
    assert http.request("GET", server.url, operation=OP).body == b"{}"

    error, took = timed(lambda: http.request("GET", server.url, operation=OP))

    assert server.connections == 1, "the second request reused the connection"
    assert str(error) == f"{OP}: no complete answer within 1 s"
    assert took <= 2


def test_a_stalled_tls_handshake_ends_within_the_total_limit(servers):
    server = servers(read_requests=False)  # accepts, then says nothing: no ServerHello
    http = client(total_timeout=1, connect_timeout=30, read_timeout=30)

    error, took = timed(lambda: http.request("GET", f"https://127.0.0.1:{server.port}/", operation=OP))

    assert str(error) == f"{OP}: no complete answer within 1 s"
    assert took <= 2


def test_the_run_deadline_shortens_the_limit_and_stops_retries(servers):
    server = servers(lambda conn, head, n: trickle(conn, ok(b"x" * 100), SLOW, server.closing))
    waits: list[float] = []
    http = client(waits, total_timeout=30, retry_attempts=4)
    http.deadline = time.monotonic() + 1.5

    error, took = timed(lambda: http.request("GET", server.url, operation=OP))

    assert str(error).startswith(f"{OP}: no complete answer within 1.") and "(the run deadline)" in str(error)
    assert took <= 2.5
    assert waits == [] and server.connections == 1, "no retry once the deadline has passed"


def test_nothing_is_sent_after_the_deadline(servers):
    server = servers(lambda conn, head, n: conn.sendall(ok()))
    http = client()
    http.deadline = time.monotonic() - 1

    error, took = timed(lambda: http.request("GET", server.url, operation=OP))

    assert isinstance(error, DeadlineReached)
    assert str(error) == f"{OP}: not sent: the run deadline passed; left for the next run"
    assert server.connections == 0 and http.requests_by_operation == {}


# -- retry waits and the deadline (no real server needed) ------------------------------------

URL = "https://hsapi.test/dragomanadapter/hsapi/GetUnitNonAvailability"


@pytest.mark.parametrize(("headers", "initial"), [({}, 5), ({"Retry-After": "10"}, 0)],
                         ids=["backoff", "retry-after"])
def test_a_retry_whose_wait_ends_after_the_deadline_is_not_made(rsps, headers, initial):
    rsps.add(responses.GET, URL, status=503, headers=headers)
    rsps.add(responses.GET, URL, status=200, json=[])
    waits: list[float] = []
    http = client(waits, retry_attempts=4, retry_initial_wait=initial, retry_max_wait=30)
    http.deadline = time.monotonic() + 4

    with pytest.raises(HttpStatusError, match=f"^{OP}: HTTP 503$"):
        http.request("GET", URL, operation=OP)

    assert waits == [] and len(rsps.calls) == 1


def test_a_retry_whose_wait_ends_before_the_deadline_is_made(rsps):
    rsps.add(responses.GET, URL, status=503, headers={"Retry-After": "2"})
    rsps.add(responses.GET, URL, status=200, json=[])
    waits: list[float] = []
    http = client(waits, retry_attempts=4, retry_initial_wait=0)
    http.deadline = time.monotonic() + 60

    assert http.request("GET", URL, operation=OP).status == 200
    assert waits == [2.0]


def test_client_pacing_past_the_deadline_raises_instead_of_sleeping(rsps):
    rsps.add(responses.GET, URL, status=200, json=[])
    waits: list[float] = []
    http = client(waits, max_requests_per_minute=6)  # one request every 10 s
    http.deadline = time.monotonic() + 5
    http.request("GET", URL, operation=OP)

    with pytest.raises(DeadlineReached, match=f"^{OP}: not sent: pacing would hold it 10.0 s, past the run"):
        http.request("GET", URL, operation=OP)
    assert waits == [] and len(rsps.calls) == 1


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed_nor_retried(servers, status):
    elsewhere = servers(lambda conn, head, n: conn.sendall(ok()))
    location = f"http://user:pw@127.0.0.1:{elsewhere.port}/secret/path?q=1".encode()
    server = servers(lambda conn, head, n: conn.sendall(
        b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location)))
    http = client(retry_attempts=4)

    with pytest.raises(HttpStatusError) as caught:
        http.request("POST", server.url + "/EVRNService.svc", operation=OP, data=b"<password/>")

    assert str(caught.value) == (f"{OP}: HTTP {status} redirect to http://127.0.0.1:{elsewhere.port} not "
                                 "followed (credentials stay with base_url's host; check base_url)")
    assert caught.value.status == status
    assert server.connections == 1 and elsewhere.connections == 0
    assert http.responses_by_status == {(OP, str(status)): 1}


@pytest.mark.parametrize(("location", "shown"), [
    ("/other/path", "redirect to http://127.0.0.1:{port} not followed"),
    ("https://evil.example/x", "redirect to https://evil.example:443 not followed"),
    ("", "redirect (no usable Location) not followed"),
    ("ftp://x/y", "redirect (no usable Location) not followed"),
    ("http://a b<script>/", "redirect (no usable Location) not followed"),
])
def test_the_redirect_message_names_only_an_origin(servers, location, shown):
    server = servers(lambda conn, head, n: conn.sendall(
        b"HTTP/1.1 307 Moved\r\nLocation: " + location.encode() + b"\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(HttpStatusError) as caught:
        client().request("GET", server.url + "/a", operation=OP)
    assert shown.format(port=server.port) in str(caught.value)


# -- memory ----------------------------------------------------------------------------------


def test_a_content_length_above_the_cap_is_refused_before_reading(servers):
    # Headers only, then silence: reading a byte of the body would wait for the time limit.
    server = servers(lambda conn, head, n: conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (http_answers.MAX_BODY_BYTES + 1)))
    http = client(total_timeout=5)

    error, took = timed(lambda: http.request("GET", server.url, operation=OP))

    assert isinstance(error, OversizedAnswer)
    assert str(error) == (f"{OP}: answer larger than {http_answers.MAX_BODY_BYTES} bytes "
                          f"(it announces {http_answers.MAX_BODY_BYTES + 1})")
    assert took < 1
    assert http.responses_by_status == {(OP, "oversized"): 1}


def chunked(size: int) -> bytes:
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(size // len(piece)))
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def test_an_oversized_answer_leaves_nothing_buffered_behind(servers, monkeypatch):
    monkeypatch.setattr(http_answers, "MAX_BODY_BYTES", 2 * 1024 * 1024)
    answer = chunked(3 * 1024 * 1024)
    server = servers(lambda conn, head, n: conn.sendall(answer))

    with pytest.raises(OversizedAnswer) as caught:
        client().request("GET", server.url, operation=OP)

    # The exception keeps its traceback's frames alive (tenacity makes it a cycle): what
    # they still hold must not include the 2 MiB read so far.
    held, tb = 0, caught.value.__traceback__.tb_next  # past this test's own frame
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, bytes | bytearray):
                held += len(value)
            elif isinstance(value, list):
                held += sum(len(v) for v in value if isinstance(v, bytes))
        tb = tb.tb_next
    assert held < 256 * 1024


def test_one_request_at_a_time_buffers_a_large_answer_of_unknown_size(servers):
    size = 2 * 1024 * 1024  # far above what is read freely (FREE_BUFFER_BYTES)
    server = servers(lambda conn, head, n: conn.sendall(chunked(size)))
    with_length = servers(lambda conn, head, n: conn.sendall(ok(b"x" * size)))
    http = client(total_timeout=1)
    with watchdog.time_limit(30) as other_request:
        assert watchdog.take_big_body_turn(other_request)  # another thread's large answer
        try:
            error, took = timed(lambda: http.request("GET", server.url, operation=OP))
            assert str(error) == f"{OP}: no complete answer within 1 s"
            assert 0.9 <= took <= 2
            assert len(http.request("GET", with_length.url, operation=OP).body) == size  # size known
        finally:
            watchdog.release_big_body_turn()
    assert len(http.request("GET", server.url, operation=OP).body) == size


def test_the_turn_waits_for_the_holder_then_passes(servers):
    size = 2 * 1024 * 1024
    server = servers(lambda conn, head, n: conn.sendall(chunked(size)))
    http = client(total_timeout=5)
    with watchdog.time_limit(30) as other_request:
        assert watchdog.take_big_body_turn(other_request)
        threading.Timer(0.5, watchdog.release_big_body_turn).start()
        started = time.monotonic()
        assert len(http.request("GET", server.url, operation=OP).body) == size
    assert 0.4 <= time.monotonic() - started <= 2


# -- between pages ---------------------------------------------------------------------------


def test_list_units_stops_between_pages_once_the_deadline_passed(rsps, tmp_path):
    from test_hsapi import NOW, TOKEN_A, TOKEN_URL, UNITS_URL, make_account, unit_page, unit_summary

    from escapia_ical.sources.hsapi import HsapiSource

    source = HsapiSource(make_account(), tmp_path, sleep=[].append, now=lambda: NOW)
    rsps.add(responses.GET, TOKEN_URL, json=TOKEN_A)

    def first_page(request):
        source.http.deadline = time.monotonic() - 1  # the deadline passes while page 1 is read
        return 200, {}, json.dumps(unit_page([unit_summary("1", "A"), unit_summary("2", "B")], 4))

    rsps.add_callback(responses.POST, UNITS_URL, callback=first_page)

    with pytest.raises(DeadlineReached, match="^SearchUnitSummaries: the run deadline passed after 1 pages"):
        source.list_units()
    assert source.requests_by_operation["SearchUnitSummaries"] == 1
