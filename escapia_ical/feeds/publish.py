"""Putting feeds on disk: atomically, only when they changed, never half-written.

A reader (nginx) sees either the old file or the new one, whole: the new bytes go to a
dot-prefixed temp file in the same folder (nginx is told to deny dotfiles), are flushed
and fsynced, then renamed over the old name, and the folder is fsynced so the rename
survives a power cut.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from pathlib import Path

from escapia_ical.errors import PublishError

log = logging.getLogger(__name__)

FEED_MODE = 0o644
DIR_MODE = 0o755
# Our temp files, and only ours: ".<name>.<pid>.<random>.tmp"
_TEMP_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")


def publish_feed(path: Path, content: bytes, *, force: bool = False) -> bool:
    """Write ``content`` to ``path`` atomically unless the file already holds it.

    Return True when the file was (re)written, False when it was left untouched (same
    bytes, same mtime, so HTTP validators stay valid). ``force`` rewrites anyway. Raise
    PublishError if the folder or file cannot be written; the old file is then intact.
    """
    if not force and current_bytes(path) == content:
        return False
    folder = path.parent
    temp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        with open(temp, "xb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, FEED_MODE)
        os.replace(temp, path)
        _fsync_folder(folder)
    except OSError as exc:
        _remove_quietly(temp)
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return True


def clean_temp_files(folder: Path) -> int:
    """Remove temp files a crashed run left in ``folder``; return how many.

    Only call this while holding the sync lock: then no writer of ours is active.
    """
    removed = 0
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise PublishError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file():
            _remove_quietly(entry)
            removed += 1
    if removed:
        log.info("removed %d stale temp file(s) from %s", removed, folder)
    return removed


def current_bytes(path: Path) -> bytes | None:
    """Return the file's bytes, or None if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
