"""Reading an access log incrementally, across rotations, a bounded amount per run.

Where reading stopped is a ``LogPosition``: the file's device and inode, the offset after
the last whole line read, the size seen, and a fingerprint of its first bytes (SHA-256 of
up to ``HEAD_BYTES``). The fingerprint recognises the file after a rename (same inode,
same first bytes), after a copy (``copytruncate``: another inode, same first bytes) and
after compression (``.1.gz``: the same first bytes once decompressed); and it tells a file
truncated in place, which keeps its inode, from the one read before.

Each run: if the configured path is still the file read last time, go on from the offset.
Otherwise that file was rotated: finish it from the offset (found as ``<log>.1``,
``<log>.1.gz``, ``<log>.0`` or ``<log>-*``), then read the new file from 0. If it cannot be
found, what was written to it after the offset is lost, and said so. Only whole lines are
read (nginx may be mid-line); at most ``max_bytes`` per run, the rest next run.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

HEAD_BYTES = 1024
CHUNK = 1 << 20  # bytes read at a time; a "line" longer than this is skipped as malformed
MAX_ROTATED_CANDIDATES = 6


class LogMissing(Exception):
    """The access log does not exist (and no rotated file holds unread lines)."""


@dataclass(frozen=True)
class LogPosition:
    device: int
    inode: int
    offset: int
    size: int
    head: str  # hex SHA-256 of the file's first head_length bytes
    head_length: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> LogPosition | None:
        """Return the position stored as ``data``, or None if it is not one."""
        if not isinstance(data, dict):
            return None
        try:
            position = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None
        numbers = (position.device, position.inode, position.offset, position.size, position.head_length)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            return None
        return position if isinstance(position.head, str) else None


@dataclass
class LogRead:
    """What one run read: the new position, bytes and files read, whether unread bytes
    remain (``behind``), the lines skipped for being too long, and notes for the operator
    (lost lines)."""

    position: LogPosition | None
    bytes_read: int = 0
    files: int = 0
    behind: bool = False
    oversized: int = 0
    skipped_bytes: int = 0  # history skipped on first sight
    notes: list[str] | None = None


def read_log(path: Path, position: LogPosition | None, max_bytes: int,
             consume: Callable[[bytes], None]) -> LogRead:
    """Feed the whole lines written to the log at ``path`` since ``position`` (None: never
    read) to ``consume``, in order, at most about ``max_bytes`` of them; return what was
    read and where to start next time. On first sight only the last ``max_bytes`` of the
    file are read (older history is skipped once). Raise LogMissing if there is no file
    at ``path`` and no rotated file to finish; OSError if a file cannot be read."""
    result = LogRead(position, notes=[])
    stat = _stat(path)
    if position is not None and stat is not None and _same_file(path, stat, position):
        _read(path, stat, position.offset, max_bytes, consume, result, live=True)
        return result
    budget = max_bytes
    if position is not None and position.offset > 0:
        rotated = _find_rotated(path, position)
        if rotated is not None:
            # Until nginx reopens its logs it still writes to the renamed file: mid-line there
            # too, unless it was compressed.
            _read(rotated, os.stat(rotated), position.offset, budget, consume, result,
                  live=not rotated.name.endswith(".gz"))
            budget -= result.bytes_read
            if result.behind:  # the rest of the rotated file first, next run
                return result
        else:
            result.notes.append(f"{path} was rotated or truncated and its previous file was not found next "
                                "to it: requests logged after the last read of it are not counted")
    if stat is None:
        if result.files:
            return result
        raise LogMissing(f"access log {path} does not exist")
    start = 0 if position is not None else _tail_start(path, stat.st_size, max_bytes)
    result.skipped_bytes = start
    _read(path, stat, start, budget, consume, result, live=True)
    return result


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _same_file(path: Path, stat: os.stat_result, position: LogPosition) -> bool:
    if (stat.st_dev, stat.st_ino) != (position.device, position.inode) or stat.st_size < position.offset:
        return False
    return _head_matches(path, position)


def _head_matches(path: Path, position: LogPosition) -> bool:
    try:
        with _open(path) as stream:
            head = stream.read(position.head_length)
    except (OSError, EOFError, gzip.BadGzipFile):
        return False
    return len(head) == position.head_length and hashlib.sha256(head).hexdigest() == position.head


def _find_rotated(path: Path, position: LogPosition) -> Path | None:
    """Return the rotated file that is the one ``position`` was read from, or None."""
    names = [path.with_name(path.name + suffix) for suffix in (".1", ".1.gz", ".0")]
    dated = sorted(path.parent.glob(path.name + "-*"), key=_mtime, reverse=True)
    for candidate in (names + dated)[:MAX_ROTATED_CANDIDATES]:
        if candidate.is_file() and _head_matches(candidate, position):
            return candidate
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            yield stream
    else:
        with open(path, "rb") as stream:
            yield stream


def _tail_start(path: Path, size: int, max_bytes: int) -> int:
    """Return where to start reading a file seen for the first time: 0, or for a file
    larger than ``max_bytes`` the start of the first whole line in its last ``max_bytes``."""
    if size <= max_bytes:
        return 0
    with open(path, "rb") as stream:
        stream.seek(size - max_bytes - 1)
        stream.readline()  # the rest of a line cut in two
        return stream.tell()


def _read(path: Path, stat: os.stat_result, start: int, budget: int, consume: Callable[[bytes], None],
          result: LogRead, *, live: bool) -> None:
    """Read whole lines of ``path`` from ``start`` into ``consume``, at most ``budget``
    bytes; record the new position in ``result``. A file still written to (``live``) may
    end mid-line: that part waits; a rotated one is read to its end."""
    offset, read, stopped = start, 0, False
    with _open(path) as stream:
        if start:
            stream.seek(start)
        while True:
            if read >= budget:
                stopped = True
                break
            chunk = stream.read(min(CHUNK, budget - read))
            if not chunk:
                break
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                if len(chunk) == CHUNK:  # no line end in a whole chunk: not a log line
                    result.oversized += 1
                    cut = len(chunk)
                elif len(chunk) == budget - read:
                    stopped = True  # a line cut by the budget: next time
                    break
                elif live:
                    break  # a line nginx is writing: next time
                else:
                    consume(chunk)  # the last line of a rotated file, without its newline
                    cut = len(chunk)
            else:
                consume(chunk[:cut])
            offset += cut
            read += cut
            if cut < len(chunk):
                stream.seek(offset)
        behind = stopped and bool(stream.read(1))
        size = max(offset, stat.st_size) if not path.name.endswith(".gz") else offset
    result.bytes_read += read
    result.files += 1
    result.behind = behind
    result.position = _position(path, stat, offset, size, result.position)


def _position(path: Path, stat: os.stat_result, offset: int, size: int,
              previous: LogPosition | None) -> LogPosition:
    """Return the position at ``offset`` in ``path``, its fingerprint over the first
    min(offset, HEAD_BYTES) bytes (bytes already read, which no longer change)."""
    if (previous is not None and (previous.device, previous.inode) == (stat.st_dev, stat.st_ino)
            and previous.head_length >= min(offset, HEAD_BYTES)):
        return replace(previous, offset=offset, size=size)
    length = min(offset, HEAD_BYTES)
    with _open(path) as stream:
        head = stream.read(length)
    return LogPosition(stat.st_dev, stat.st_ino, offset, size, hashlib.sha256(head).hexdigest(), len(head))
