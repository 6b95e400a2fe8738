"""Fixtures shared by the unit tests of the HTTP layer and the sources."""

import pytest
import requests
import responses

from escapia_ical.state import close_stores


@pytest.fixture
def rsps():
    """A `responses` mock: no request leaves the process."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def waits() -> list[float]:
    """The waits a client requested from its injected ``sleep`` (append it as ``sleep``)."""
    return []


@pytest.fixture
def http():
    """A real requests session, for tests that talk to a started sandbox on loopback."""
    with requests.Session() as session:
        yield session


@pytest.fixture(autouse=True)
def _close_state_databases():
    """Each test's state databases are closed after it (a test reads them in this process)."""
    yield
    close_stores()


@pytest.fixture(scope="session")
def postgres_dsn():
    """A real PostgreSQL server on loopback for the whole session (tests/unit/pg_server.py)."""
    from pg_server import start

    with start() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3-protocol server (moto) on loopback for the whole session (tests/unit/s3_server.py)."""
    from s3_server import start

    with start() as endpoint:
        yield endpoint
