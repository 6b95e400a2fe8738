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

Secrets (the keys of schema.SECRET_KEYS) are not in the digest: a fast digest of them
would let whoever copies state_dir test guesses of a password offline. What the schema
checks of them is, instead: that they are strings, how long (none, under 16 characters,
or more: the minLength it asks is 1, or 16 for feed_token_secret) and whether they start
as an http(s) URL (healthcheck_url's pattern). tests/unit/test_config_checked.py fails if
the schema comes to check more of a secret than that.

The other checks of load.py (accounts, folders, URLs) run every time: only the schema's
verdict is remembered. The file is only an optimisation: unreadable, absent or stale, the
document is validated as if it were not there, and failing to write it is not an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from escapia_ical import __version__

from .schema import CONFIG_SCHEMA, SECRET_KEYS

FILENAME = "config.checked"
_MAX_BYTES = 200


def digest(document: Any, schema: Any) -> str | None:
    """The digest of ``document`` as validated against ``schema`` by this version (its
    secrets by what the schema checks of them only); None if it has none (a number too
    long to write out, nesting too deep: it is then validated every time)."""
    try:
        text = f"escapia-ical {__version__}\0{schema!r}\0{_without_secrets(document)!r}"
    except (ValueError, RecursionError):
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).hexdigest()


class _Secret(NamedTuple):
    """What the schema checks of a secret (see the module docstring); its repr is no value
    YAML can give."""

    kind: str
    length: str
    url: bool


_URL = re.compile(CONFIG_SCHEMA["properties"]["healthcheck_url"]["pattern"])  # what a URL secret must match


def _without_secrets(value: Any, secret: bool = False) -> Any:
    """``value`` with each string under a secret's key told by what the schema checks of it.
    (Anything else under such a key is kept whole: a profile or a unit may be named
    "password", and their settings are no secret; the schema takes no string there.)"""
    if secret and isinstance(value, str):
        length = "none" if not value else "under 16" if len(value) < 16 else "16 or more"
        return _Secret("str", length, _URL.search(value) is not None)
    if isinstance(value, dict):
        return {key: _without_secrets(item, key in SECRET_KEYS) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def known_valid(state_dir: Path | None, value: str | None) -> bool:
    """Whether ``state_dir`` remembers ``value`` as the digest of a document that validated."""
    if state_dir is None or value is None:
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


def remember_valid(state_dir: Path, value: str | None) -> None:
    """Keep ``value`` as the digest of the document that validated, if there is one and
    ``state_dir`` exists and may be written (else nothing: it is validated again next time)."""
    if value is None or not state_dir.is_dir():
        return
    from escapia_ical.feeds.publish import write_at  # (only when remembering: rarely)
    from escapia_ical.store.documents import STATE_FILE_MODE

    with contextlib.suppress(OSError):
        folder = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # atomically, 0600; a link there is replaced, never followed
            write_at(folder, FILENAME, f"{value}\n".encode("ascii"), STATE_FILE_MODE)
        finally:
            os.close(folder)
