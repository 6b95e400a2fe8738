"""Account locks: who holds them, when a holder counts as stuck, and no following links."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time

import pytest

from escapia_ical.errors import LockHeld, PublishError
from escapia_ical.sync.lock import account_lock, account_lock_path, status_lock


def hold(state_dir, account: str, since: dt.datetime, pid: int = 4242):
    path = account_lock_path(state_dir, account)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")  # noqa: SIM115 - held by the caller
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(f"{pid} {since.isoformat()}\n")
    handle.flush()
    return handle


def test_accounts_lock_independently_and_name_their_holder(tmp_path):
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with hold(tmp_path, "a", since):
        with pytest.raises(LockHeld) as refused, account_lock(tmp_path, "a", stuck_after=60):
            pass
        holder = refused.value.holder
        assert (holder.pid, holder.since, holder.stuck) == (4242, since, False)
        with account_lock(tmp_path, "b"):  # another account: free
            assert account_lock_path(tmp_path, "b").read_text().startswith(f"{os.getpid()} ")


def test_a_holder_older_than_a_run_may_last_is_stuck(tmp_path):
    with (hold(tmp_path, "a", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=400)),
          pytest.raises(LockHeld) as refused, account_lock(tmp_path, "a", stuck_after=300)):
        pass
    assert refused.value.holder.stuck


def test_waiting_for_a_lock_is_bounded(tmp_path):
    with hold(tmp_path, "a", dt.datetime.now(dt.UTC)):
        began = time.monotonic()
        with pytest.raises(LockHeld), account_lock(tmp_path, "a", wait=0.3):
            pass
        assert 0.25 < time.monotonic() - began < 2


def test_lock_files_are_never_followed_through_links(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state = tmp_path / "state"
    (state / "accounts" / "a").mkdir(parents=True)
    (state / "accounts" / "a" / "sync.lock").symlink_to(victim)
    with pytest.raises(PublishError, match="cannot open lock file"), account_lock(state, "a"):
        pass
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (state / "accounts" / "b").symlink_to(elsewhere)
    with pytest.raises(PublishError, match="is a symbolic link; refusing to write through it"), \
            account_lock(state, "b"):
        pass
    (state / "status.lock").symlink_to(victim)
    with pytest.raises(PublishError), status_lock(state):
        pass
    assert victim.read_text() == "precious" and os.listdir(elsewhere) == []
