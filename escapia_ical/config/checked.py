"""A configuration that validated is not checked against the JSON Schema again while it
stays the same: cron runs the same file every five minutes, and importing jsonschema and
validating cost more than any other fixed part of a steady tick (0.07 CPU s of about 0.45
at 100 units; more with hundreds of accounts).

``state_dir/config.checked`` (0600) holds a BLAKE2b digest of the last document that
validated, after ``${VAR}`` expansion, together with this version and the schema itself:
any change to the file, to a variable it reads, to escapia-ical or to the schema makes a
different digest, and the document is validated again. The digest is of ``repr`` of the
document: YAML gives dicts, lists, strings, numbers, booleans, None, dates, bytes and sets,
and their repr tells any two apart (1, 1.0, "1" and True; nan and None). A set's order is
not stable from one process to the next: such a document is only validated every time.

The other checks of load.py (accounts, folders, URLs) run every time: only the schema's
verdict is remembered. The file is only an optimisation: unreadable, absent or stale, the
document is validated as if it were not there, and failing to write it is not an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from escapia_ical import __version__

FILENAME = "config.checked"
_MAX_BYTES = 200


def digest(document: Any, schema: Any) -> str:
    """The digest of ``document`` as validated against ``schema`` by this version."""
    text = f"escapia-ical {__version__}\0{schema!r}\0{document!r}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).hexdigest()


def known_valid(state_dir: Path | None, value: str) -> bool:
    """Whether ``state_dir`` remembers ``value`` as the digest of a document that validated."""
    if state_dir is None:
        return False
    try:
        fd = os.open(state_dir / FILENAME, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError):  # (ValueError: a NUL in the path)
        return False
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read(_MAX_BYTES).decode("ascii", "replace").strip() == value
        except OSError:
            return False


def remember_valid(state_dir: Path, value: str) -> None:
    """Keep ``value`` as the digest of the document that validated, if ``state_dir`` exists
    and may be written (else nothing: it is validated again next time)."""
    if not state_dir.is_dir():
        return
    with contextlib.suppress(OSError):
        fd, temp = tempfile.mkstemp(dir=state_dir, prefix=f".{FILENAME}.")  # (0600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(value + "\n")
            os.replace(temp, state_dir / FILENAME)  # (a link there is replaced, never followed)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
