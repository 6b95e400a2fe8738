"""Credentials never leave their host: a redirect (a proxy's, a load balancer's) to another
origin is not followed, so EscapiaNET's password and HSAPI's client secret stay home.

The redirect points to a second loopback listener (another port: another origin), which
must receive nothing at all.
"""

from __future__ import annotations

import socket
import threading

import pytest
from conftest import account_yaml, write_config

MESSAGE = "HTTP {status} redirect to http://127.0.0.1:{port} not followed (credentials stay with base_url's host; check base_url)"


@pytest.fixture
def elsewhere():
    """A listener on another port that records every byte sent to it."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            received.append(b"")
            conn.settimeout(2)
            try:
                while data := conn.recv(65536):
                    received[-1] += data
            except OSError:
                pass
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], received
    listener.close()


@pytest.mark.parametrize(("mode", "op", "status"), [
    ("escapianet-per_unit", "UnitCalendarAvail", 307),
    ("escapianet-batch", "UnitSearch", 308),
    ("hsapi-full", "auth/token", 307),
])
def test_a_redirect_to_another_origin_is_not_followed(deployment, elsewhere, mode, op, status):
    port, received = elsewhere
    write_config(deployment.config, account_yaml(mode))
    unit = deployment.sandbox.unit_ids()[0]
    where = {"unit": unit} if op == "UnitCalendarAvail" else {}
    deployment.sandbox.inject("redirect", op=op, status=status, location=f"http://127.0.0.1:{port}/steal",
                              **where)

    result = deployment.run("sync")

    assert result.returncode == 1, result.stderr
    assert f"{op}: {MESSAGE.format(status=status, port=port)}" in result.stderr
    assert "Traceback" not in result.stderr
    assert received == [], "the other origin received nothing, not even a connection"
    redirected = [r["status"] for r in deployment.sandbox.requests
                  if r["op"] == op and r["unit"] == where.get("unit", r["unit"])]
    assert redirected == [status], "answered once by the redirect, and not retried"
    published = list(deployment.output.rglob("*.ics"))
    if op == "UnitCalendarAvail":  # one unit failed; the others were published
        assert deployment.feed(unit) not in published and len(published) == len(deployment.sandbox.unit_ids()) - 1
    else:  # the account failed
        assert published == []
