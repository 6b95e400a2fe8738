"""End-to-end fixtures: the installed CLI in a subprocess against the sandbox on loopback.

The sandbox runs in this test process (a thread), so tests read its ground truth and change
its bookings directly while the real `escapia-ical` talks to it over HTTP.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from escapia_ical.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PMC_CODE,
    SANDBOX_PMCID,
    SANDBOX_SOAP_PASSWORD,
    SANDBOX_SOAP_USER,
    Sandbox,
)
from escapia_ical.state import close_stores

BIN = Path(sys.executable).parent
CLI = shutil.which("escapia-ical", path=str(BIN)) or str(BIN / "escapia-ical")
PAST_DAYS, FUTURE_DAYS = 7, 730
BASE_URL = "https://calendars.example.com/feeds"  # feeds.base_url: UIDs end in @calendars.example.com


@dataclass
class Deployment:
    """A config, an output and a state folder in tmp, wired to one sandbox."""

    root: Path
    sandbox: Sandbox
    config: Path
    output: Path
    state: Path
    mode: str = "hsapi"

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        """The nights a feed shows: the feed window (every mode asks for all of it)."""
        today = dt.date.today()
        return today - dt.timedelta(days=PAST_DAYS), today + dt.timedelta(days=FUTURE_DAYS)

    def env(self, **extra: str | None) -> dict[str, str]:
        """Return the environment for the CLI; a None value in ``extra`` unsets that name."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESCAPIA_")}
        env.update(SANDBOX_URL=self.sandbox.base_url, SANDBOX_ID=SANDBOX_CLIENT_ID,
                   SANDBOX_SECRET=SANDBOX_CLIENT_SECRET, SANDBOX_SOAP_USER=SANDBOX_SOAP_USER,
                   SANDBOX_SOAP_PASSWORD=SANDBOX_SOAP_PASSWORD)
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def run(self, *args: str, timeout: float = 60, **env: str | None) -> subprocess.CompletedProcess:
        command = [CLI, *args]
        if args and args[0] != "sandbox":
            command[2:2] = ["--config", str(self.config)]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=self.env(**env), cwd=self.root)

    def feed(self, unit_id: str, account: str = "sandbox") -> Path:
        from escapia_ical.feeds.names import feed_filename

        return self.output / account / feed_filename(unit_id)

    def truth(self, unit_id: str) -> set[dt.date]:
        return self.sandbox.blocked_nights(unit_id, *self.window)


MODES = ("hsapi", "hsapi-full", "escapianet-per_unit", "escapianet-batch")


def account_yaml(mode: str = "hsapi", name: str = "sandbox", units: str = "all",
                 base_url: str = "${SANDBOX_URL}", extra: str = "") -> str:
    """Return the YAML of one account reading the sandbox through ``mode``."""
    if mode.startswith("hsapi"):
        keys = f"""\
    api: hsapi
    pmcid: "{SANDBOX_PMCID}"
    client_id: ${{SANDBOX_ID}}
    client_secret: ${{SANDBOX_SECRET}}
    mode: {"full" if mode == "hsapi-full" else "incremental"}
"""
    else:
        keys = f"""\
    api: escapianet
    username: ${{SANDBOX_SOAP_USER}}
    password: ${{SANDBOX_SOAP_PASSWORD}}
    property_manager_code: "{SANDBOX_PMC_CODE}"
    calendar_mode: {mode.split("-", 1)[1]}
"""
    return f"""\
  - name: {name}
    base_url: {base_url}
{keys}    units: {units}
{extra}"""


def write_config(path: Path, accounts: str | None = None, retry_max_wait: float = 0) -> None:
    path.write_text(f"""\
output_dir: output
state_dir: state
http:
  retry_attempts: 3
  retry_initial_wait: 0
  retry_max_wait: {retry_max_wait}
  read_timeout: 10
feeds:
  base_url: {BASE_URL}
  past_days: {PAST_DAYS}
  future_days: {FUTURE_DAYS}
accounts:
{accounts if accounts is not None else account_yaml()}""", encoding="utf-8")
    path.chmod(0o600)


@pytest.fixture
def sandbox():
    with Sandbox(max_page_size=3, guest_data_in_nonavailability=True) as server:
        yield server


@pytest.fixture
def deployment(tmp_path, sandbox) -> Deployment:
    config = tmp_path / "accounts.yaml"
    write_config(config)
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state")


class _Pings(BaseHTTPRequestHandler):
    """A healthchecks.io stand-in: records each ping's path, answers 200."""

    received: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.received.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def healthchecks():
    """(a healthcheck URL on loopback, the list of paths pinged so far)."""
    received: list[str] = []
    handler = type("Pings", (_Pings,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/5e5a7e1d-c0ffee-uuid", received
    server.shutdown()


@pytest.fixture(autouse=True)
def _close_state_databases():
    """Each test's state databases are closed after it (a test reads them in this process)."""
    yield
    close_stores()


@pytest.fixture(scope="session")
def postgres_dsn():
    """A real PostgreSQL server on loopback for the whole session (tests/unit/pg_server.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
    from pg_server import start

    with start() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3-protocol server (moto) on loopback for the whole session (tests/unit/s3_server.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
    from s3_server import start

    with start() as endpoint:
        yield endpoint
