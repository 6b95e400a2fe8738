"""Several hosts sharing one PostgreSQL state (sync/leases.py), as two real `sync`
processes against a real PostgreSQL server: started together, every account is synced
exactly once; one killed with SIGKILL mid-run frees its leases at once, and the next tick
finishes its accounts."""

from __future__ import annotations

import signal
import subprocess
import time

import psycopg
import psycopg.sql
import pytest
from conftest import CLI, Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.sandbox import Sandbox

ACCOUNTS = 6


def deploy(tmp_path, sandbox: Sandbox, dsn: str, schema: str, host: str = "a") -> Deployment:
    """One host's config: its own state_dir (tokens, locks), the shared database and output
    folder (as on shared storage)."""
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / f"accounts-{host}.yaml"
    write_config(config, "".join(account_yaml(name=f"pm{i}") for i in range(ACCOUNTS)))
    text = config.read_text().replace("state_dir: state\n", f"state_dir: state-{host}\n")
    config.write_text(text.replace("accounts:\n", f"state:\n  backend: postgresql\n  dsn: ${{STATE_DSN}}\n"
                                   f"  schema: {schema}\naccounts:\n", 1))
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / f"state-{host}")


def start(deployment: Deployment, dsn: str) -> subprocess.Popen:
    return subprocess.Popen([CLI, "sync", "--config", str(deployment.config), "-v"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=deployment.env(STATE_DSN=dsn),
                            cwd=deployment.root)


def leases(dsn: str, schema: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as db:
        rows = db.execute(psycopg.sql.SQL("SELECT name, pid, finished FROM {}").format(
            psycopg.sql.Identifier(schema, "leases"))).fetchall()
    return {name: (pid, finished) for name, pid, finished in rows}


def all_true(deployment: Deployment) -> None:
    for i in range(ACCOUNTS):
        for unit in deployment.sandbox.unit_ids():
            assert read_nights(deployment.feed(unit, f"pm{i}")) == deployment.truth(unit), (i, unit)


def test_two_hosts_started_together_sync_each_account_once(tmp_path, postgres_dsn):
    with Sandbox(latency=0.02) as sandbox:
        deployment = deploy(tmp_path, sandbox, postgres_dsn, "leases_once")
        other = deploy(tmp_path, sandbox, postgres_dsn, "leases_once", host="b")
        first, second = start(deployment, postgres_dsn), start(other, postgres_dsn)
        outputs = [p.communicate(timeout=120) for p in (first, second)]
        assert {first.returncode, second.returncode} <= {0, 75}, outputs  # 75: every account was another's
        all_true(deployment)
        # An account synced twice would read its change feed again (a steady tick after the cold one).
        changes = sandbox.request_count("GetReservationChanges")
        held = leases(postgres_dsn, "leases_once")
        accounts = {name: pid for name, (pid, finished) in held.items() if name.startswith("account:")}
        assert set(accounts) == {f"account:pm{i}" for i in range(ACCOUNTS)}
        assert all(finished is not None for _, finished in held.values())
        assert set(accounts.values()) <= {first.pid, second.pid}
        skipped = sum(err.count("skipped: held by host") + err.count("synced this tick by host") for _, err in outputs)
        assert skipped == ACCOUNTS, outputs  # each account, by the process that did not sync it

        sandbox.reset_request_log()  # the same cold sync of one account alone, for comparison
        single = deploy(tmp_path / "one", sandbox, postgres_dsn, "leases_one")
        write_config(single.config, account_yaml(name="pm0"))
        assert single.run("sync", STATE_DSN=postgres_dsn).returncode == 0
        assert changes == ACCOUNTS * sandbox.request_count("GetReservationChanges")


@pytest.mark.parametrize("when", [1.0])
def test_a_host_killed_mid_run_loses_its_leases_at_once(tmp_path, postgres_dsn, when):
    with Sandbox(latency=0.15) as sandbox:
        deployment = deploy(tmp_path, sandbox, postgres_dsn, "leases_kill")
        doomed = start(deploy(tmp_path, sandbox, postgres_dsn, "leases_kill", host="b"), postgres_dsn)
        time.sleep(when)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        held = leases(postgres_dsn, "leases_kill")
        unfinished = [name for name, (_, finished) in held.items() if finished is None and name.startswith("account:")]
        assert unfinished, "the kill came after the run: nothing was held"
        began = time.monotonic()
        survivor = deployment.run("sync", "-v", timeout=120, STATE_DSN=postgres_dsn)
        took = time.monotonic() - began
        assert survivor.returncode == 0, survivor.stderr
        assert "skipped" not in survivor.stderr  # no lease outlived its holder
        assert survivor.stderr.count(": written (") >= len(unfinished)  # (-v: the accounts it did are told)
        all_true(deployment)
        held = leases(postgres_dsn, "leases_kill")
        assert all(held[name][0] != doomed.pid for name in unfinished)
        shown = deployment.run("status", STATE_DSN=postgres_dsn)
        assert shown.stdout.count("last run by host ") == ACCOUNTS, shown.stdout
        print(f"failover: the next tick took every lease at once and finished in {took:.1f} s")
