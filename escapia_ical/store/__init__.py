"""Where the state lives: one small interface, one module per backend.

The rest of the program keeps its state as JSON *documents* (a cursor, the published-feed
records, held losses, the run status), each named by a *key* such as
``accounts/<account>/feeds``. A store keeps them, and writes only what changed: a document
may be *split* at some of its mappings, whose entries are then kept (and rewritten) one by
one, so that a tick which changes one feed record of 10,000 rewrites one row, not 14 MB.

The interface (:class:`Store`) is all a backend provides; SQLite (:mod:`.sqlite`, the
embedded default, stdlib ``sqlite3``) is one module, and a PostgreSQL one would be another
with the same tables::

    read(key) -> value | None         the document, reassembled (None: there is none)
    write(key, value, split) -> int   store it; return the bytes written (0: unchanged)
    delete(key)                       forget it
    keys(prefix) -> list[str]         the documents whose key starts with prefix
    transaction()                     a context: the writes inside commit together or not at all
    close()

``split`` is a tuple of paths (tuples of mapping keys, ``"*"`` for any) at which the value
is split: ``((), ("fetched",))`` keeps every top-level field, and every entry of ``fetched``,
as a row of its own. Splitting changes how much a write costs, never what is read back.
A row that cannot be decoded is left out of the document with a warning (every part of the
state is re-derivable; the readers check the shape of what they get).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

Split = tuple[tuple[str, ...], ...]
log = logging.getLogger(__name__)


class Store(Protocol):
    def read(self, key: str) -> Any | None: ...

    def write(self, key: str, value: Any, split: Split = ()) -> int: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> list[str]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


def matches(path: tuple[str, ...], split: Split) -> bool:
    """Whether the mapping at ``path`` is split (``"*"`` in a split path matches any key)."""
    return any(len(s) == len(path) and all(a in ("*", b) for a, b in zip(s, path, strict=True))
               for s in split)


Row = tuple[str, str]


def flatten(value: Any, split: Split, encode, path: tuple[str, ...] = ()) -> Iterator[Row]:
    """Yield (part, encoded value) rows for ``value`` (part: the row's path as
    :func:`encode_part` writes it): a mapping split at ``path`` gives a row of its own
    (``{}``, so that an empty one is kept) and the rows of its entries."""
    if isinstance(value, dict) and matches(path, split):
        yield encode_part(path), "{}"
        for name, entry in value.items():
            yield from flatten(entry, split, encode, (*path, str(name)))
    else:
        yield encode_part(path), encode(value)


def read_rows(rows: Iterable[tuple[bytes, bytes | str]], where: object, key: str) -> Any:
    """Return the document the stored (part, body) rows of ``key`` make (see :func:`assemble`),
    decoding them as they come (10,000 bodies are never all held twice). A row that cannot be
    decoded is left out, with one warning naming the store (``where``) and the document."""
    decoded, bad = [], 0
    for part, body in rows:
        path = row_path(part)
        try:
            if path is None:
                raise ValueError(part)
            decoded.append((path, json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)))
        except (ValueError, RecursionError):  # ValueError: not UTF-8, or not JSON
            bad += 1
    if bad:
        log.warning("state %s (%s): %d unreadable row(s) ignored; the next sync rewrites them",
                    where, key, bad)
    return assemble(decoded)


def assemble(rows: list[tuple[list[str], Any]]) -> Any:
    """Return the value the (path, decoded value) rows of :func:`flatten` make, or None if
    there is no row for the document itself. Rows whose parent is missing are left out."""
    rows = sorted(rows, key=lambda row: len(row[0]))
    if not rows or rows[0][0]:
        return None
    root = rows[0][1]
    for path, value in rows[1:]:
        parent = root
        for name in path[:-1]:
            parent = parent.get(name) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent[path[-1]] = value
    return root


# One encoder for every row (json.dumps with options builds a new one per call: 2x slower).
# ASCII only, as the JSON files were: a lone surrogate from Escapia (legal JSON) is kept
# as its escape, where UTF-8 could not encode it (and PostgreSQL's text takes no NUL).
encode_body = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def encode_part(path: tuple[str, ...]) -> str:
    """A row's path as its part: the JSON list ``encode_body`` makes of it, built directly
    when no name needs an escape (10,000 feed names a write: 4x faster)."""
    text = '","'.join(path)
    if path and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'["{text}"]'
    return encode_body(list(path))


def row_path(part: bytes) -> list[str] | None:
    """A row's part as the list of mapping keys it is, or None if it is not one."""
    if part.startswith(b'["') and part.endswith(b'"]') and b"\\" not in part:  # most: no escape in it
        try:
            names = part[2:-2].decode("utf-8").split('","')
        except ValueError:
            return None
        if not any('"' in name for name in names):
            return names
    try:
        path = json.loads(part.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return path if isinstance(path, list) and all(isinstance(name, str) for name in path) else None
