"""Healthcheck pings against a loopback server: bounded in time, never logging the URL."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from loopback import RawServer, ok, trickle

from escapia_ical import healthcheck
from escapia_ical.healthcheck import ping
from escapia_ical.sources.stop import request_stop, reset_stop

SECRET_PATH = "/ping/0f1e2d3c-secret-uuid"


@pytest.fixture
def answering():
    with RawServer(lambda conn, head, n: conn.sendall(ok(b""))) as server:
        yield server


@pytest.fixture
def trickling():
    with RawServer(lambda conn, head, n: trickle(conn, ok(b"OK"), 0.3, server.closing)) as server:
        yield server


def test_ping_posts_to_the_suffix(answering):
    ping(answering.url + SECRET_PATH, "start")
    assert answering.received[0].startswith(f"POST {SECRET_PATH}/start HTTP/1.1".encode())


def test_no_url_no_ping():
    ping(None, "start")  # nothing to reach: must simply return


def test_a_trickling_server_cannot_hold_the_process(trickling, monkeypatch, caplog):
    monkeypatch.setattr(healthcheck, "TIMEOUT", 1.0)
    started = time.monotonic()
    ping(trickling.url + SECRET_PATH, "0")
    assert time.monotonic() - started <= 2
    assert [r.getMessage() for r in caplog.records if r.name == "escapia_ical.healthcheck"] == [
        "healthcheck ping /0 failed: no answer within 1 s"]


def test_the_deadline_shortens_the_ping(trickling):
    started = time.monotonic()
    ping(trickling.url + SECRET_PATH, "start", deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started <= 1.5


def test_no_ping_once_the_deadline_passed(answering, caplog):
    ping(answering.url + SECRET_PATH, "start", deadline=time.monotonic() - 1)
    assert answering.connections == 0
    assert "healthcheck ping /start skipped: no time left before the run deadline" in caplog.text


def test_a_stopped_run_still_reports_its_exit_code(answering):
    request_stop()
    try:
        ping(answering.url + SECRET_PATH, "143")
    finally:
        reset_stop()
    assert answering.received[0].startswith(f"POST {SECRET_PATH}/143 ".encode())


@pytest.mark.parametrize("status", [200, 404])
def test_the_url_never_reaches_a_log_even_at_debug(answering, caplog, status):
    server = answering
    if status == 404:
        server = RawServer(lambda conn, head, n: conn.sendall(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests"):  # what -vv does
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    url = server.url + SECRET_PATH
    # The check can fail: a plain request in this setup does log the path.
    requests.post(url + "/probe", timeout=5)
    assert SECRET_PATH in caplog.text
    caplog.clear()

    ping(url, "start")

    assert server.connections == 2
    messages = [r.getMessage() for r in caplog.records]
    assert not any(SECRET_PATH in m or str(server.port) in m for m in messages), messages
    if status == 404:
        assert messages == ["healthcheck ping /start failed: HTTP 404"]
        server.close()
