"""What is remembered between runs, in ``state_dir`` (mode 0700, files 0600).

Layout::

    state_dir/sync.lock                   the overlap lock (lock.py)
    state_dir/status.json                 the last run's outcomes (status.py)
    state_dir/accounts/<account>/token.json   a cached bearer token (a secret)
    state_dir/accounts/<account>/feeds.json   per feed: content digest and DTSTAMP

Every file is written atomically, so a crash leaves the old state or the new one. State
that cannot be read is treated as absent (it is all re-derivable), never as fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from escapia_ical.errors import PublishError

log = logging.getLogger(__name__)

STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600


def read_json(path: Path) -> Any | None:
    """Return the JSON stored at ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600. Raise PublishError on failure."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        make_private_dir(path.parent)
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STATE_FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise PublishError(f"cannot write state file {path}: {exc.strerror or exc}") from exc


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` and any missing parents with mode 0700 (mkdir's ``parents``
    would give the parents the umask's mode)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(mode=STATE_DIR_MODE, exist_ok=True)


class AccountState:
    """The state files of one account."""

    def __init__(self, state_dir: Path, account: str):
        self.folder = state_dir / "accounts" / account

    @property
    def token_path(self) -> Path:
        return self.folder / "token.json"

    def feed_stamps(self) -> dict[str, dict[str, str]]:
        """Return ``{feed file name: {"digest": ..., "dtstamp": ISO}}`` (empty if none)."""
        data = read_json(self.folder / "feeds.json")
        return data if isinstance(data, dict) else {}

    def save_feed_stamps(self, stamps: dict[str, dict[str, str]]) -> None:
        write_json(self.folder / "feeds.json", stamps)
