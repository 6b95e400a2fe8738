"""One HTTP client policy for every source: timeouts, retries, size limits, counting.

Retries use tenacity: connection errors, timeouts, 429 and 5xx are retried with
exponential backoff and jitter, waiting at least what ``Retry-After`` asks; other 4xx are
never retried. Waits come from :class:`HttpPolicy`, and ``sleep`` is injectable, so tests
never sleep for real.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from escapia_ical import __version__
from escapia_ical.config import HttpPolicy
from escapia_ical.errors import SourceError
from escapia_ical.sources.pacing import Pacer, Sleep

USER_AGENT = f"escapia-ical/{__version__}"
MAX_BODY_BYTES = 32 * 1024 * 1024  # far above any real answer; bounds memory on a bad one


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
    """No answer: connection refused or reset, timeout. Worth retrying."""


class OversizedAnswer(SourceError):
    """The answer is larger than any real one; not retried."""


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


class HttpClient:
    """Sends requests for one account under one :class:`HttpPolicy`."""

    def __init__(self, policy: HttpPolicy, *, sleep: Sleep | None = None, deadline: float = math.inf):
        self.policy = policy
        # Units are fetched by several threads: one Session (connection pool) per thread.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sleep = sleep or time.sleep
        self.pacer = Pacer(policy.max_requests_per_minute, policy.max_concurrency,
                           max_wait=policy.retry_max_wait, sleep=self._sleep)
        # initial * 2**n plus up to `initial` of jitter (wait_exponential_jitter's
        # arguments changed across tenacity releases; these two have not).
        self._backoff = wait_exponential(
            multiplier=policy.retry_initial_wait, max=policy.retry_max_wait
        ) + wait_random(0, policy.retry_initial_wait)
        self.deadline = deadline  # time.monotonic() after which failed calls are not retried
        self.requests_by_operation: Counter[str] = Counter()
        self.responses_by_status: Counter[tuple[str, str]] = Counter()

    def request(self, method: str, url: str, *, operation: str,
                decode: Callable[[HttpResult], Any] | None = None, **kwargs) -> Any:
        """Send the request, retrying transient failures; return the 2xx result.

        With ``decode``, return ``decode(result)`` instead; a TransientAnswer it raises is
        retried like a 5xx. Raise HttpStatusError for a final non-2xx answer and
        TransportError when no answer came; both name the operation and never carry
        credentials.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.retry_attempts),
            wait=self._wait,
            retry=retry_if_exception(self._worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                result = self._send_once(method, url, operation, kwargs)
                return decode(result) if decode else result
        raise AssertionError("unreachable: tenacity either returns or reraises")

    @property
    def session(self) -> requests.Session:
        """This thread's session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def _count(self, counter: Counter, key) -> None:
        with self._lock:
            counter[key] += 1

    def _send_once(self, method: str, url: str, operation: str, kwargs: dict) -> HttpResult:
        self.pacer.wait()
        self._count(self.requests_by_operation, operation)
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        try:
            with self.session.request(method, url, timeout=timeout, stream=True, **kwargs) as response:
                self.pacer.observe(response.headers)
                body = _read_limited(response, operation)
                result = HttpResult(response.status_code, dict(response.headers), body)
        except OversizedAnswer:
            self._count(self.responses_by_status, (operation, "oversized"))
            raise
        except requests.Timeout as exc:
            self._count(self.responses_by_status, (operation, "timeout"))
            raise TransportError(f"{operation}: timed out ({_reason(exc)})") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self._count(self.responses_by_status, (operation, "error"))
            raise TransportError(f"{operation}: connection failed ({_reason(exc)})") from None
        except (requests.RequestException, ValueError) as exc:
            # e.g. an invalid header or URL: our request is wrong, retrying cannot help, and
            # the exception's text may quote a header value (a token), so it is not shown.
            self._count(self.responses_by_status, (operation, "error"))
            raise SourceError(f"{operation}: request could not be sent ({exc.__class__.__name__})") from None
        self._count(self.responses_by_status, (operation, str(result.status)))
        if 200 <= result.status < 300:
            return result
        retry_after = parse_retry_after(result.headers.get("Retry-After"))
        raise HttpStatusError(f"{operation}: HTTP {result.status}", result.status, retry_after,
                              result.body[:65536])

    def _worth_retrying(self, exc: BaseException) -> bool:
        if time.monotonic() > self.deadline:
            return False  # the run is over its time: the next run tries again
        if isinstance(exc, TransportError | TransientAnswer):
            return True
        if not isinstance(exc, HttpStatusError):
            return False
        if exc.status != 429 and exc.status < 500:
            return False
        # Asked to wait longer than we ever would: fail now, retry on the next tick.
        return exc.retry_after is None or exc.retry_after <= self.policy.retry_max_wait

    def _wait(self, retry_state: RetryCallState) -> float:
        backoff = min(self._backoff(retry_state), self.policy.retry_max_wait)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after is not None else backoff


def _read_limited(response: requests.Response, operation: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise OversizedAnswer(f"{operation}: answer larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
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
