"""What an answer is to the HTTP client: its errors, reading its body within the size cap,
and describing a failed request in one line without a URL or a secret.

``http.py`` re-exports the public names; import them from there.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import mmap
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

from escapia_ical.errors import SourceError
from escapia_ical.sources.watchdog import Scope, release_big_body_turn, take_big_body_turn

MAX_BODY_BYTES = 32 * 1024 * 1024  # far above any real answer; bounds memory on a bad one
# An answer of unknown size (no Content-Length, or compressed) may be buffered up to this
# much freely; beyond it, one request in the process at a time (see read_body). Real ones
# are far smaller. Every waiting thread holds this much: at 1 MiB, 8 threads of oversized
# chunked answers peaked at 86.5 MiB against 42.6 MiB for a normal run (tests/e2e/
# test_memory.py wants at most twice); at 256 KiB, 80.3 MiB.
FREE_BUFFER_BYTES = 256 * 1024
CHUNK = 65536
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


class HttpStatusError(SourceError):
    """The server answered with a non-2xx status. ``body`` is the start of its answer."""

    def __init__(self, message: str, status: int, retry_after: float | None = None,
                 body: bytes = b""):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = body


class TransientAnswer(SourceError):
    """A 2xx answer that says "try again later" (e.g. a SOAP system error): retried."""


class TransportError(SourceError):
    """No complete answer: connection refused or reset, timeout. Worth retrying."""


class OversizedAnswer(SourceError):
    """The answer is larger than any real one; not retried."""


class OutOfTime(SourceError):
    """The request's time limit passed while it waited for its turn to buffer a large answer."""


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Given a Retry-After header (seconds or an HTTP date), return seconds to wait."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def read_body(response: requests.Response, operation: str, scope: Scope) -> bytes:
    """Return the whole (decoded) body of ``response``.

    Raise OversizedAnswer, before reading a byte, if its Content-Length is above
    MAX_BODY_BYTES, or as soon as more than that arrives. An answer whose size is not known
    in advance (chunked, or compressed) is buffered beyond FREE_BUFFER_BYTES only while this
    request holds the process's one turn for that (so oversized answers cost one cap of
    memory, not one per thread): raise OutOfTime if ``scope``'s limit passes first. Beyond
    FREE_BUFFER_BYTES the body is kept in an anonymous memory map, returned to the OS at once.
    """
    announced = _content_length(response)
    if announced is not None and announced > MAX_BODY_BYTES:
        raise OversizedAnswer(f"{operation}: answer larger than {MAX_BODY_BYTES} bytes "
                              f"(it announces {announced})")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    size_known = announced is not None and encoding in ("", "identity")
    chunks: list[bytes] = []
    spill: mmap.mmap | None = None
    size, turn = 0, False
    try:
        for chunk in response.iter_content(chunk_size=CHUNK):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise OversizedAnswer(f"{operation}: answer larger than {MAX_BODY_BYTES} bytes")
            if spill is None and size > FREE_BUFFER_BYTES:
                if not size_known:
                    turn = take_big_body_turn(scope)
                    if not turn:
                        raise OutOfTime(f"{operation}: waited too long to read a large answer")
                # Freed heap memory stays with the malloc arena of the thread that used it
                # (8 threads would each keep a cap's worth); a map goes back to the OS.
                spill = mmap.mmap(-1, announced if size_known and announced else MAX_BODY_BYTES)
                for part in chunks:
                    spill.write(part)
                chunks.clear()
            if spill is None:
                chunks.append(chunk)
            else:
                spill.write(chunk)
        return spill[:size] if spill is not None else b"".join(chunks)
    finally:
        # An exception's traceback keeps this frame alive, and a cycle through it (e.g.
        # tenacity's saved outcome) can keep that for long: never the body with it.
        chunks.clear()
        if spill is not None:
            spill.close()
        if turn:
            release_big_body_turn()


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def status_error(result: HttpResult, url: str, operation: str) -> HttpStatusError:
    """Return the error for a non-2xx ``result`` of a request to ``url``. A redirect names
    only where it points (scheme, host, port): a Location may carry a path or credentials."""
    if 300 <= result.status < 400:
        location = result.headers.get("Location", "").strip()
        where = _origin(urljoin(url, location)) if location else None
        shown = f" redirect to {where}" if where else " redirect (no usable Location)"
        message = (f"{operation}: HTTP {result.status}{shown} not followed "
                   "(credentials stay with base_url's host; check base_url)")
        return HttpStatusError(message, result.status, None, result.body[:65536])
    retry_after = parse_retry_after(result.headers.get("Retry-After"))
    return HttpStatusError(f"{operation}: HTTP {result.status}", result.status, retry_after,
                           result.body[:65536])


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    if not _PLAIN_HOST.fullmatch(host):
        return None  # not a host name: never echo arbitrary text into the logs
    return f"{parts.scheme}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def reason(exc: BaseException) -> str:
    """Return a short, human reason for a requests failure: the innermost cause's kind
    ("connection reset", "timed out"), never a repr or a URL."""
    cause: BaseException | None = exc
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        nested = [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        inner = getattr(cause, "reason", None)
        follow = inner if isinstance(inner, BaseException) else (nested[0] if nested else cause.__context__)
        if follow is None:
            break
        cause = follow
    kinds = {ConnectionResetError: "connection reset", ConnectionRefusedError: "connection refused",
             TimeoutError: "timed out", BrokenPipeError: "connection closed"}
    for kind, text in kinds.items():
        if isinstance(cause, kind):
            return text
    name = cause.__class__.__name__ if cause is not None else exc.__class__.__name__
    return {"IncompleteRead": "answer cut off", "RemoteDisconnected": "closed without an answer",
            "ProtocolError": "connection broken", "NameResolutionError": "host not found",
            "NewConnectionError": "cannot connect"}.get(name, name)
