"""Where the state lives: one small interface, one module per backend.

The rest of the program keeps its state as JSON *documents* (a cursor, the published-feed
records, held losses, the run status), each named by a *key* such as
``accounts/<account>/feeds``. A store keeps them, and writes only what changed: a document
may be *split* at some of its mappings, whose entries are then kept (and rewritten) in
small chunks, so that a tick which changes one feed record of 10,000 rewrites one chunk of
about 16 records, not 14 MB.

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
is split: ``((), ("fetched",))`` keeps every top-level field as a row of its own, and the
entries of ``fetched`` in *chunks* of about 16 (see :func:`chunks`). Splitting changes how
much a write costs, never what is read back. A row that cannot be decoded is left out of
the document with a warning (every part of the state is re-derivable; the readers check the
shape of what they get).

Why chunks: a row per entry made a tick of 10,000 units decode, fingerprint and re-encode
30,000 small rows to find that none changed (0.55 s of a 1.9 s tick); a chunk of 16 costs
about what one row did. A changed entry rewrites its chunk (16 entries, not 1). Chunk
boundaries depend on the entries' names (a chunk starts at one name in 16, by a hash of the
name; and after 64 entries), so adding or removing an entry changes one chunk, not those
after it (or, in a run of over 64 names with no boundary, those up to the next one).
Stores of schema 1 kept a row per entry: they are read as they are, and rewritten in chunks
by the next write of each document.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

try:
    import orjson
except ImportError:  # (a dependency; a reader on a bare interpreter may lack it: json then)
    orjson = None

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


CHUNK_EVERY = 16  # a chunk starts at one name in 16 (by a hash of it): 16 entries on average
CHUNK_MOST = 64  # ... or after this many entries (a chunk's size never grows without bound)


def flatten(value: Any, split: Split, encode, path: tuple[str, ...] = ()) -> Iterator[Row]:
    """Yield (part, encoded value) rows for ``value`` (part: the row's path as
    :func:`encode_part` writes it): a mapping split at ``path`` gives a row of its own
    (``{}``, so that an empty one is kept) and the rows of its entries: each entry's own
    if some are split further, else the rows of its chunks (:func:`chunks`)."""
    if isinstance(value, dict) and matches(path, split):
        yield encode_part(path), "{}"
        if any(len(s) > len(path) and matches(path, (s[:len(path)],)) for s in split):
            for name, entry in value.items():
                yield from flatten(entry, split, encode, (*path, str(name)))
        else:
            for first, chunk in chunks(value):
                yield encode_chunk_part(path, first), encode(chunk)
    else:
        yield encode_part(path), encode(value)


def chunks(mapping: dict) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (first name, entries) for the chunks of ``mapping``'s entries in the order of
    their names: a chunk starts at the first name, at each name that :func:`starts_chunk`,
    and after CHUNK_MOST entries."""
    chunk: dict[str, Any] = {}
    first = ""
    for key in sorted(mapping, key=str):
        name = str(key)
        if chunk and (len(chunk) >= CHUNK_MOST or starts_chunk(name)):
            yield first, chunk
            chunk = {}
        if not chunk:
            first = name
        chunk[name] = mapping[key]
    if chunk:
        yield first, chunk


def starts_chunk(name: str) -> bool:
    """Whether a chunk starts at ``name``: one name in CHUNK_EVERY, by a hash of the name
    (BLAKE2b, not CRC-32: names such as 1020-7B.ics and 1020-8B.ics differ in a few bits,
    and CRC-32's low bits then repeat; it made chunks of 1 and of CHUNK_MOST)."""
    return not hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=1).digest()[0] % CHUNK_EVERY


def read_rows(rows: Iterable[tuple[bytes, bytes | str]], where: object, key: str) -> Any:
    """Return the document the stored (part, body) rows of ``key`` make (see :func:`assemble`),
    decoding them as they come (10,000 bodies are never all held twice). A row that cannot be
    decoded is left out, with one warning naming the store (``where``) and the document."""
    decoded, bad = [], 0
    for part, body in rows:
        place = row_place(part)
        try:
            if place is None:
                raise ValueError(part)
            value = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
            if place[1] and not isinstance(value, dict):
                raise ValueError(part)  # a chunk is a mapping of entries
            decoded.append((*place, value))
        except (ValueError, RecursionError):  # ValueError: not UTF-8, or not JSON
            bad += 1
    if bad:
        log.warning("state %s (%s): %d unreadable row(s) ignored; the next sync rewrites them",
                    where, key, bad)
    return assemble(decoded)


def assemble(rows: list[tuple[list[str], bool, Any]]) -> Any:
    """Return the value the (path, chunk?, decoded value) rows of :func:`flatten` make, or
    None if there is no row for the document itself. A chunk's entries go into the mapping
    at its path. Rows whose mapping is missing are left out."""
    rows = sorted(rows, key=lambda row: (len(row[0]), row[1]))
    if not rows or rows[0][0] or rows[0][1]:
        return None
    root = rows[0][2]
    for path, chunk, value in rows[1:]:
        parent = root
        for name in path if chunk else path[:-1]:
            parent = parent.get(name) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if chunk:
            parent.update(value)
        else:
            parent[path[-1]] = value
    return root


# The standard library's encoder, one for every call (json.dumps with options builds a new
# one per call: 2x slower). ASCII only, as the JSON files were: a lone surrogate from
# Escapia (legal JSON) is kept as its escape, where UTF-8 could not encode it (and
# PostgreSQL's text takes no NUL: both encoders escape it). No check for circular
# references (a marker per container: 25 % of the time): documents are trees, read from
# JSON or built by us; a cycle would still fail (RecursionError).
_encode_std = json.JSONEncoder(separators=(",", ":"), sort_keys=True, check_circular=False).encode
# Dates and dataclasses are refused, as by the standard library's encoder (then it says so).
_ORJSON = orjson and orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_body(value: Any) -> str:
    """A row's body: ``value`` as compact JSON with sorted keys.

    By orjson, 5-7x faster than the standard library: a steady tick at 10,000 units
    encodes 8 MB of state to compare it with what is stored (0.15 CPU s by ``json``).
    What orjson refuses (a lone surrogate, an integer past 64 bits, a key that is not a
    string) and what it writes as UTF-8 rather than ASCII is encoded by ``json``: the
    rows stay ASCII (postgresql.py compares them by md5 of their ASCII bytes), and read
    back the same values either way (tests/unit/test_store_encoding.py), in bytes that
    may differ (``1e-05`` is ``0.00001``, DEL is not escaped: such a row is rewritten once).
    orjson writes a float that is not finite as null (JSON has no such number; state holds
    none), and writes an Enum or a UUID where ``json`` refused it (state holds none)."""
    if orjson is not None:
        try:
            body = orjson.dumps(value, option=_ORJSON)
        except TypeError:  # (orjson.JSONEncodeError is one)
            pass
        else:
            if body.isascii():
                return body.decode("ascii")
    return _encode_std(value)


def encode_part(path: tuple[str, ...]) -> str:
    """A row's path as its part: the JSON list the standard library makes of it, built directly
    when no name needs an escape (10,000 feed names a write: 4x faster)."""
    text = '","'.join(path)
    if path and _plain(text):
        return f'["{text}"]'
    return _encode_std(list(path))  # (ASCII: parts keep the form they always had)


def encode_chunk_part(path: tuple[str, ...], first: str) -> str:
    """The part of the chunk of the mapping at ``path`` that starts at the name ``first``:
    the path with ``[first]`` after it, as JSON (``["a","units",["1020-7B"]]``)."""
    text = '","'.join(path)
    if _plain(text) and _plain(first):
        return f'["{text}",["{first}"]]' if path else f'[["{first}"]]'
    return _encode_std([*path, [first]])


def _plain(text: str) -> bool:
    """Whether ``text`` needs no escape in JSON (and holds no quote)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _quick(part: bytes) -> bool:
    """Whether ``part`` may be read without JSON: printable ASCII with no escape in it, as
    every part written so is (:func:`_plain`); anything else is read by ``json.loads``."""
    return part.isascii() and b"\\" not in part and part.decode("ascii").isprintable()


def row_place(part: bytes) -> tuple[list[str], bool] | None:
    """Where a row goes: (the path of its value, False), or for a chunk (the path of its
    mapping, True); None if ``part`` is neither."""
    if _quick(part):  # most parts: read without JSON
        if part.endswith(b'"]]'):  # a chunk
            head, comma, first = part[:-3].rpartition(b',["')
            if not comma and part.startswith(b'[["') and len(part) >= 6:  # of the document itself
                first, path = part[3:-3], []
            else:
                path = _quick_path(head + b"]") if comma and head.endswith(b'"') else None
            if path is not None and b'"' not in first:
                return path, True
        else:
            path = _quick_path(part)
            if path is not None:
                return path, False
    try:
        found = json.loads(part.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, list):
        return None
    if all(isinstance(name, str) for name in found):
        return found, False
    if (found and isinstance(found[-1], list) and len(found[-1]) == 1
            and all(isinstance(name, str) for name in [*found[:-1], *found[-1]])):
        return found[:-1], True
    return None


def _quick_path(part: bytes) -> list[str] | None:
    """The names of a :func:`_quick` part ``["a","b"]``; None if it is not that shape."""
    if len(part) >= 4 and part.startswith(b'["') and part.endswith(b'"]'):
        names = part[2:-2].decode("ascii").split('","')
        if not any('"' in name for name in names):
            return names
    return None


def row_path(part: bytes) -> list[str] | None:
    """A row's part as the list of mapping keys it is, or None if it is not one (a chunk's
    part is not)."""
    place = row_place(part)
    return place[0] if place is not None and not place[1] else None
