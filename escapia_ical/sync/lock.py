"""The overlap lock: one sync at a time per state directory.

``flock`` on a file in state_dir. The kernel drops the lock when its holder exits or is
killed, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from escapia_ical.errors import LockHeld, PublishError
from escapia_ical.state import make_private_dir


@contextmanager
def sync_lock(state_dir: Path) -> Iterator[None]:
    """Hold the sync lock for the block. Raise LockHeld at once if another run has it."""
    path = state_dir / "sync.lock"
    try:
        make_private_dir(state_dir)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise PublishError(f"cannot open lock file {path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another sync is running (lock {path} is held)") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)
