"""sync/leases.py against a real PostgreSQL server: a lease excludes every other session
(a sync, or a prune/rotation waiting for it), a sync skips an account another process's
sync took since its run started (on the database's clock), a prune's hold records nothing,
and a lease lost mid-run is found before state is recorded."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import psycopg
import pytest

from escapia_ical.errors import LockHeld, StateError
from escapia_ical.state import close_stores
from escapia_ical.store.documents import use_postgresql
from escapia_ical.sync import leases

_schemas = itertools.count()


@pytest.fixture
def state_dir(tmp_path, postgres_dsn):
    use_postgresql(tmp_path, postgres_dsn, f"lease{next(_schemas)}")
    yield tmp_path
    use_postgresql(tmp_path, None)
    close_stores()


def in_other_session(state_dir, entered: threading.Event, leave: threading.Event, **kwargs):
    def hold():
        with leases.account_lease(state_dir, "pm", **kwargs):
            entered.set()
            leave.wait(30)
    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(30)
    return thread


def test_a_held_lease_excludes_others_until_released(state_dir):
    entered, leave = threading.Event(), threading.Event()
    thread = in_other_session(state_dir, entered, leave, run_started=dt.datetime.now(dt.UTC))
    with pytest.raises(LockHeld, match=r"held by host \S+ \(pid \d+\) since"), \
            leases.account_lease(state_dir, "pm", wait=0.5):  # a prune waits, then gives up
        pass
    leave.set()
    thread.join(30)
    with leases.account_lease(state_dir, "pm", wait=5):  # free again
        pass


def test_a_sync_skips_an_account_another_sync_took_since_its_run_started(state_dir, monkeypatch):
    mine = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)  # this run started 5 s ago
    with leases.account_lease(state_dir, "pm", run_started=mine):
        pass
    monkeypatch.setattr(leases.os, "getpid", lambda: 1)  # another process of this host
    with pytest.raises(LockHeld, match="pm: synced this tick by host"), \
            leases.account_lease(state_dir, "pm", run_started=mine):
        pass
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)  # a run that started after it: syncs
    with leases.account_lease(state_dir, "pm", run_started=later):
        pass


def test_a_prune_or_rotation_hold_is_not_a_sync(state_dir, monkeypatch):
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    with leases.account_lease(state_dir, "pm", wait=1):  # no row: a sync of this tick still runs
        pass
    monkeypatch.setattr(leases.os, "getpid", lambda: 1)
    with leases.account_lease(state_dir, "pm", run_started=started):
        pass


def test_a_lease_lost_mid_run_is_found_before_state_is_recorded(state_dir, postgres_dsn):
    with leases.account_lease(state_dir, "pm", run_started=dt.datetime.now(dt.UTC)):
        leases.confirm_lease(state_dir, "pm")  # held: nothing said
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'escapia-ical lease'")
        with pytest.raises(StateError, match="lost the lease of account pm .* the next tick syncs it again"):
            leases.confirm_lease(state_dir, "pm")


def test_without_postgresql_there_is_no_lease(tmp_path):
    with leases.account_lease(tmp_path, "pm", run_started=dt.datetime.now(dt.UTC)):
        leases.confirm_lease(tmp_path, "pm")
