"""request_stop(): every request in flight is aborted, every wait wakes, nothing is retried,
new requests fail at once — against real loopback servers and real (interruptible) sleeps."""

from __future__ import annotations

import threading
import time

import pytest
from loopback import RawServer, ok, trickle

from escapia_ical.config import HttpPolicy
from escapia_ical.sources import stop
from escapia_ical.sources.http import HttpClient
from escapia_ical.sources.pacing import Pacer
from escapia_ical.sources.stop import Stopped, request_stop, reset_stop

OP = "GetUnitNonAvailability"


@pytest.fixture(autouse=True)
def _reset():
    reset_stop()
    yield
    reset_stop()


def run_in_thread(call) -> tuple[threading.Thread, dict]:
    """Start ``call()`` in a thread; the dict gets its "error" and when it "ended"."""
    outcome: dict = {}

    def target():
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(condition, seconds: float = 5) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "the setup did not happen in time"
        time.sleep(0.01)


def test_stop_aborts_a_slow_request_and_a_long_backoff_at_once():
    with RawServer(lambda conn, head, n: trickle(conn, ok(b"x" * 1000), 0.5, slow.closing)) as slow, \
            RawServer(lambda conn, head, n: conn.sendall(
                b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")) as busy:
        # Real sleeps: the default, interruptible one. Without the stop each would take 30 s.
        policy = HttpPolicy(total_timeout=30, read_timeout=30, retry_attempts=4, retry_initial_wait=30)
        reading, backing_off = HttpClient(policy), HttpClient(policy)
        reader, read = run_in_thread(lambda: reading.request("GET", slow.url, operation=OP))
        waiter, waited = run_in_thread(lambda: backing_off.request("GET", busy.url, operation=OP))
        wait_for(lambda: slow.received and b"\r\n\r\n" in slow.received[0] and busy.connections == 1)
        time.sleep(0.3)  # the answer is trickling; the 503 came back and the backoff began

        stopped_at = time.monotonic()
        request_stop()
        reader.join(5)
        waiter.join(5)

        assert read["ended"] - stopped_at < 1 and waited["ended"] - stopped_at < 1
        assert isinstance(read["error"], Stopped)
        assert str(read["error"]) == f"{OP}: stopped before a complete answer came"
        assert str(waited["error"]) == f"{OP}: not retried: the run is stopping"
        assert busy.connections == 1 and reading.requests_by_operation[OP] == 1
        assert reading.responses_by_status == {(OP, "stopped"): 1}

        started = time.monotonic()
        with pytest.raises(Stopped, match=f"^{OP}: not sent: the run is stopping$"):
            HttpClient(policy).request("GET", busy.url, operation=OP)
        assert time.monotonic() - started < 0.1 and busy.connections == 1


def test_stop_wakes_a_pacing_wait():
    pacer = Pacer(per_minute=1, concurrency=1)  # the second request waits 60 s
    pacer.wait()
    thread, outcome = run_in_thread(pacer.wait)
    time.sleep(0.2)

    stopped_at = time.monotonic()
    request_stop()
    thread.join(5)

    assert isinstance(outcome["error"], Stopped) and outcome["ended"] - stopped_at < 1


def test_an_injected_sleep_is_left_alone_but_nothing_is_retried():
    with RawServer(lambda conn, head, n: conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")) as busy:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            request_stop()  # SIGTERM arrives during the backoff

        http = HttpClient(HttpPolicy(retry_attempts=4, retry_initial_wait=1), sleep=sleep)
        with pytest.raises(Stopped, match=f"^{OP}: not sent: the run is stopping$"):
            http.request("GET", busy.url, operation=OP)
        assert len(waits) == 1 and busy.connections == 1


def test_sleep_without_a_stop_just_waits():
    started = time.monotonic()
    stop.sleep(0.1)
    assert 0.1 <= time.monotonic() - started < 0.5
    assert not stop.stop_requested()
    request_stop()
    assert stop.stop_requested()
    with pytest.raises(Stopped):
        stop.sleep(0)
    reset_stop()
    stop.sleep(0)
