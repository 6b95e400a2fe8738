"""Locks: one run at a time per account, and short turns at the shared status file.

``flock`` on files in state_dir. The kernel drops a lock when its holder exits or is
killed, so a crashed run never leaves a stale lock behind. Each account has its own lock
(``state_dir/accounts/<account>/sync.lock``): a run stuck on one account (a hung disk, a
server that never answers) keeps only that account from being synced; the next runs skip
it and sync the others, and a lock held longer than any run may last is reported. The lock
file holds its holder's pid and start time. Lock files are never followed through a
symbolic link.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from escapia_ical.errors import LockHeld, PublishError
from escapia_ical.feeds.publish import open_folder
from escapia_ical.state import STATE_DIR_MODE, make_private_dir
from escapia_ical.sync.leases import account_lease, status_lease

POLL = 0.1  # seconds between tries while waiting for a lock
STUCK_MARGIN = 60.0  # seconds beyond the run deadline after which a holder counts as stuck


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as its file says (pid 0 and no time when it cannot be read)."""

    pid: int
    since: dt.datetime | None
    stuck: bool = False  # held longer than a run may last

    def describe(self) -> str:
        when = f" since {self.since.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"pid {self.pid}{when}" if self.pid else f"another process{when}"


def account_lock_path(state_dir: Path, account: str) -> Path:
    return state_dir / "accounts" / account / "sync.lock"


@contextmanager
def account_lock(state_dir: Path, account: str, *, wait: float = 0.0,
                 stuck_after: float = float("inf"), run_started: dt.datetime | None = None) -> Iterator[None]:
    """Hold the account's sync lock for the block, and, with the state in PostgreSQL, its
    lease among hosts (sync/leases.py; ``run_started``: a sync's, see account_lease). Raise
    LockHeld (with ``holder``) if another process still holds either after ``wait`` seconds;
    its holder counts as stuck once it has held the local lock for ``stuck_after`` seconds.
    Raise PublishError if it cannot be opened, StateError if the database cannot be reached."""
    path = account_lock_path(state_dir, account)
    with _locked(state_dir, path, wait, stuck_after, f"account {account!r}"), \
            account_lease(state_dir, account, run_started=run_started, wait=wait):
        yield


@contextmanager
def status_lock(state_dir: Path, wait: float = 30.0) -> Iterator[None]:
    """Hold the lock of the status (a read-merge-write takes milliseconds; runs of
    different accounts may finish together). Raise LockHeld after ``wait`` seconds."""
    with _locked(state_dir, state_dir / "status.lock", wait, float("inf"), "the status file"), \
            status_lease(state_dir):  # other hosts, with the state in PostgreSQL (sync/leases.py)
        yield


@contextmanager
def channels_lock(state_dir: Path, wait: float = 30.0) -> Iterator[None]:
    """Hold the lock of ``channels.json`` and the access log position in it (a sync and a
    separate `escapia-ical channels` must not count the same lines twice). Raise LockHeld
    after ``wait`` seconds."""
    with _locked(state_dir, state_dir / "channels.lock", wait, float("inf"), "the channel fetch log"):
        yield


@contextmanager
def _locked(state_dir: Path, path: Path, wait: float, stuck_after: float, what: str) -> Iterator[None]:
    try:
        make_private_dir(state_dir)
        folder = open_folder(path.parent, state_dir, STATE_DIR_MODE)  # no link below state_dir
        try:
            descriptor = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise PublishError(f"cannot open lock file {path}: {exc.strerror or exc}") from exc
    try:
        give_up = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    holder = _holder(descriptor, stuck_after)
                    raise LockHeld(f"{what} is being synced by {holder.describe()} (lock {path})",
                                   holder) from None
                time.sleep(POLL)
        os.ftruncate(descriptor, 0)
        started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        os.pwrite(descriptor, f"{os.getpid()} {started}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)


def _holder(descriptor: int, stuck_after: float) -> LockHolder:
    with contextlib.suppress(OSError, ValueError):
        pid_text, _, since_text = os.pread(descriptor, 200, 0).decode("ascii").strip().partition(" ")
        since = dt.datetime.fromisoformat(since_text) if since_text else None
        age = (dt.datetime.now(dt.UTC) - since).total_seconds() if since else 0.0
        return LockHolder(int(pid_text), since, age > stuck_after)
    return LockHolder(0, None)
