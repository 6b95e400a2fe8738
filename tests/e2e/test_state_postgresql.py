"""State in PostgreSQL (``state: {backend: postgresql}``) under the real CLI, against a real
PostgreSQL server on loopback: feeds published, a steady tick from the shared state,
``status`` reading it, this host's SQLite state taken in once, and the DSN's password in no
output."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import psycopg
import psycopg.sql
from conftest import write_config
from feeds import read_nights

TODAY = dt.date.today()
_schemas = itertools.count()


def use_postgresql(deployment, dsn: str) -> str:
    """Point the deployment's config at a schema of its own; return the schema."""
    schema = f"e2e_{next(_schemas)}"
    write_config(deployment.config)
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("accounts:\n", f"state:\n  backend: postgresql\n  dsn: ${{STATE_DSN}}\n"
                                              f"  schema: {schema}\naccounts:\n", 1))
    return schema


def documents(dsn: str, schema: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(dsn) as db:
        rows = db.execute(psycopg.sql.SQL("SELECT store, key, count(*) FROM {} GROUP BY store, key").format(
            psycopg.sql.Identifier(schema, "documents"))).fetchall()
    return {(store, key): n for store, key, n in rows}


def test_a_sync_keeps_its_state_in_postgresql_and_status_reads_it(deployment, postgres_dsn):
    schema = use_postgresql(deployment, postgres_dsn)
    sandbox = deployment.sandbox
    unit = sandbox.unit_ids()[1]
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=30), TODAY + dt.timedelta(days=33))
    first = deployment.run("sync", "-vv", STATE_DSN=postgres_dsn)
    assert first.returncode == 0, first.stderr
    for each in sandbox.unit_ids():
        assert read_nights(deployment.feed(each)) == deployment.truth(each)
    stored = documents(postgres_dsn, schema)
    with psycopg.connect(postgres_dsn) as db:  # the document's row, and its chunks of records (escapia_ical.store)
        rows = db.execute(psycopg.sql.SQL("SELECT part, body FROM {} WHERE key = 'accounts/sandbox/feeds'").format(
            psycopg.sql.Identifier(schema, "documents"))).fetchall()
    assert stored[("state", "accounts/sandbox/feeds")] == len(rows) < len(sandbox.unit_ids())
    records = {name for part, body in rows if part != "[]" for name in json.loads(body)}
    assert records == {"", *(deployment.feed(each).name for each in sandbox.unit_ids())}  # "": the day they share
    assert ("status", "status") in stored
    assert not (deployment.state / "state.db").exists() and not (deployment.state / "status.db").exists()

    sandbox.reset_request_log()
    steady = deployment.run("sync", STATE_DSN=postgres_dsn)
    assert steady.returncode == 0, steady.stderr
    assert sandbox.request_count("GetReservationChanges") == 1
    assert sandbox.request_count("GetUnitNonAvailability") <= 1  # the state came back from PostgreSQL

    status = deployment.run("status", "--json", STATE_DSN=postgres_dsn)
    assert status.returncode == 0, status.stdout + status.stderr
    data = json.loads(status.stdout)
    assert data["stale"] == 0 and len(data["feeds"]) == len(sandbox.unit_ids())
    assert all(f["last_error"] is None and f["age_seconds"] < 60 for f in data["feeds"])
    password = postgres_dsn.split(":")[2].split("@")[0]
    for result in (first, steady, status):
        assert password not in result.stdout + result.stderr


def test_this_hosts_sqlite_state_is_taken_in_once(deployment, postgres_dsn):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0  # SQLite in state_dir
    schema = use_postgresql(deployment, postgres_dsn)
    sandbox.reset_request_log()
    moved = deployment.run("sync", STATE_DSN=postgres_dsn)
    assert moved.returncode == 0, moved.stderr
    assert "taken into PostgreSQL 127.0.0.1:" in moved.stderr and f"(schema {schema})" in moved.stderr
    assert sandbox.request_count("GetUnitNonAvailability") <= 1  # not a cold sync: records and cursor came along
    again = deployment.run("sync", STATE_DSN=postgres_dsn)
    assert again.returncode == 0 and "taken into" not in again.stderr


def test_an_unreachable_database_is_a_clear_error_and_publishes_nothing(deployment, postgres_dsn):
    use_postgresql(deployment, postgres_dsn)
    port = postgres_dsn.rsplit(":", 1)[1].split("/")[0]
    closed = postgres_dsn.replace(f":{port}/", ":9/")  # nothing listens on the discard port
    result = deployment.run("sync", STATE_DSN=closed)
    assert result.returncode != 0
    assert "sandbox: cannot take the lease of account sandbox in PostgreSQL 127.0.0.1:9/escapia" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(deployment.output.rglob("*.ics"))


def test_config_problems_are_named(deployment):
    write_config(deployment.config)
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("accounts:\n", "state:\n  backend: postgresql\naccounts:\n", 1))
    result = deployment.run("sync")
    assert result.returncode == 2
    assert "state: backend postgresql needs dsn" in result.stderr
