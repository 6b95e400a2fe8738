"""One HTTP client policy for every source: time limits, retries, size limits, counting.

Every request is bounded in time as a whole (``total_timeout``, and never past the run's
deadline) by :mod:`.watchdog`, whatever the server does; redirects are never followed, so
credentials go nowhere but base_url's host. Retries use tenacity: connection errors,
timeouts, 429 and 5xx are retried with exponential backoff and jitter, waiting at least what
``Retry-After`` asks; other 4xx and 3xx are never retried, nor is anything whose wait would
end after the deadline. Waits come from :class:`HttpPolicy`, and ``sleep`` is injectable,
so tests never sleep for real; the default sleep wakes at once on :func:`.stop.request_stop`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential, wait_random

from escapia_ical import __version__
from escapia_ical.config import HttpPolicy
from escapia_ical.errors import DeadlineReached, SourceError
from escapia_ical.sources import stop
from escapia_ical.sources.http_answers import (  # noqa: F401 - re-exported for the sources
    MAX_BODY_BYTES,
    HttpResult,
    HttpStatusError,
    OutOfTime,
    OversizedAnswer,
    TransientAnswer,
    TransportError,
    parse_retry_after,
    read_body,
    reason,
    status_error,
)
from escapia_ical.sources.pacing import Pacer, Sleep
from escapia_ical.sources.session import Session
from escapia_ical.sources.slots import request_slot
from escapia_ical.sources.stop import Stopped
from escapia_ical.sources.transport import new_session
from escapia_ical.sources.watchdog import time_limit

USER_AGENT = f"escapia-ical/{__version__}"


class RequestObserver(Protocol):
    """Watches every attempt an :class:`HttpClient` sends (``diagnose`` counts, times and
    bounds them with one)."""

    def sending(self, operation: str) -> None:
        """Called just before an attempt is sent; raise a SourceError to refuse it (not retried)."""

    def answered(self, operation: str, outcome: str, headers: Mapping[str, str], seconds: float) -> None:
        """Called once per attempt sent: ``outcome`` is the HTTP status or how it failed
        ("timeout", "error", ...); ``headers`` are the answer's (empty without one)."""


class HttpClient:
    """Sends requests for one account under one :class:`HttpPolicy`."""

    def __init__(self, policy: HttpPolicy, *, sleep: Sleep | None = None, deadline: float = math.inf):
        self.policy = policy
        # Units are fetched by several threads: one Session (connection pool) per thread.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sleep = sleep or stop.sleep  # the default wakes (raising Stopped) on request_stop()
        self.pacer = Pacer(policy.max_requests_per_minute, policy.max_concurrency,
                           max_wait=policy.retry_max_wait, sleep=self._sleep)
        # initial * 2**n plus up to `initial` of jitter (wait_exponential_jitter's
        # arguments changed across tenacity releases; these two have not).
        self._backoff = wait_exponential(
            multiplier=policy.retry_initial_wait, max=policy.retry_max_wait
        ) + wait_random(0, policy.retry_initial_wait)
        self.deadline = deadline  # time.monotonic(): no request, wait or retry goes past it
        self.requests_by_operation: Counter[str] = Counter()
        self.responses_by_status: Counter[tuple[str, str]] = Counter()
        self._planned_waits: dict[int, float] = {}  # id(retry state) -> its next wait
        self.observer: RequestObserver | None = None

    def request(self, method: str, url: str, *, operation: str,
                decode: Callable[[HttpResult], Any] | None = None, attempts: int | None = None,
                **kwargs) -> Any:
        """Send the request, retrying transient failures; return the 2xx result.

        With ``decode``, return ``decode(result)`` instead; a TransientAnswer it raises is
        retried like a 5xx. ``attempts``: at most this many (default: the policy's; 1 for a
        request that must not be sent twice, such as a create). Redirects are never
        followed. Raise HttpStatusError for a final non-2xx answer (3xx included),
        TransportError when no complete answer came (in ``total_timeout`` or before the
        deadline), DeadlineReached when the run's deadline leaves no time to send it, Stopped
        after request_stop(); all name the operation and never carry credentials. A retry
        whose wait would end after the deadline is not made.
        """
        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.policy.retry_attempts),
            wait=self._wait,
            retry=self._retry,
            sleep=lambda seconds: self._pause(operation, seconds),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                result = self._send_once(method, url, operation, kwargs)
                return decode(result) if decode else result
        raise AssertionError("unreachable: tenacity either returns or reraises")

    @property
    def session(self) -> Session:
        """This thread's session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def _count(self, counter: Counter, key) -> None:
        with self._lock:
            counter[key] += 1

    def _time_limit(self, operation: str) -> tuple[float, str]:
        """Return this request's limit in seconds and how to describe it; wait for the pacer."""
        if stop.stop_requested():
            raise Stopped(f"{operation}: not sent: the run is stopping")
        try:
            self.pacer.wait(self.deadline)
        except DeadlineReached as exc:
            raise DeadlineReached(f"{operation}: not sent: {exc}") from None
        except Stopped:
            raise Stopped(f"{operation}: not sent: the run is stopping") from None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineReached(f"{operation}: not sent: the run deadline passed; left for the next run")
        if left < self.policy.total_timeout:
            return left, f"{_seconds(left)} s (the run deadline)"
        return self.policy.total_timeout, f"{_seconds(self.policy.total_timeout)} s"

    def _send_once(self, method: str, url: str, operation: str, kwargs: dict) -> HttpResult:
        # A slot of the run first (sources/slots.py), then the pacer's turn, the time limit
        # left before the deadline and the latency clock: waiting for a slot never carries a
        # request past the deadline, nor bursts an account's paced requests.
        with request_slot(self.deadline, operation):
            return self._send_in_slot(method, url, operation, kwargs)

    def _send_in_slot(self, method: str, url: str, operation: str, kwargs: dict) -> HttpResult:
        limit, within = self._time_limit(operation)
        if self.observer is not None:
            self.observer.sending(operation)
        self._count(self.requests_by_operation, operation)
        started = time.monotonic()
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        with time_limit(limit) as scope:
            try:
                # Never a redirect followed (send_request does not): requests would resend the body
                # (EscapiaNET's password) and headers to wherever Location points, even plain http.
                with self.session.send_request(method, url, timeout=timeout, **kwargs) as response:
                    self.pacer.observe(response.headers)
                    body = read_body(response, operation, scope)
                    result = HttpResult(response.status_code, dict(response.headers), body)
                cut_short = scope.end()
            except Exception as exc:
                cut_short = scope.end() or isinstance(exc, OutOfTime)
                if not cut_short:
                    failure = _failure(exc, operation)
                    if failure is None:
                        raise  # not about the transport: a bug, reported as such
                    self._answered(operation, failure[1], started)
                    raise failure[0] from None
        if cut_short:  # whatever was read may be incomplete (a body without Content-Length)
            if scope.stopped:
                self._answered(operation, "stopped", started)
                raise Stopped(f"{operation}: stopped before a complete answer came")
            self._answered(operation, "timeout", started)
            raise TransportError(f"{operation}: no complete answer within {within}")
        self._answered(operation, str(result.status), started, result.headers)
        if 200 <= result.status < 300:
            return result
        error = status_error(result, url, operation)
        del result  # the traceback keeps this frame alive: not the whole body with it
        raise error

    def _answered(self, operation: str, outcome: str, started: float,
                  headers: Mapping[str, str] | None = None) -> None:
        self._count(self.responses_by_status, (operation, outcome))
        if self.observer is not None:
            self.observer.answered(operation, outcome, headers or {}, time.monotonic() - started)

    def _pause(self, operation: str, seconds: float) -> None:
        try:
            self._sleep(seconds)
        except Stopped:
            raise Stopped(f"{operation}: not retried: the run is stopping") from None

    def _retry(self, retry_state: RetryCallState) -> bool:
        """Return whether to try again; plan the wait first: a retry that could only start
        after the deadline is not made (the next run tries again)."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is None or stop.stop_requested() or not _worth_retrying(exc, self.policy):
            return False
        if retry_state.attempt_number >= self.policy.retry_attempts:
            return False
        backoff = min(self._backoff(retry_state), self.policy.retry_max_wait)
        retry_after = getattr(exc, "retry_after", None)
        wait = max(backoff, retry_after) if retry_after is not None else backoff
        if time.monotonic() + wait >= self.deadline:
            return False
        self._planned_waits[id(retry_state)] = wait
        return True

    def _wait(self, retry_state: RetryCallState) -> float:
        return self._planned_waits.pop(id(retry_state), 0.0)


def _worth_retrying(exc: BaseException, policy: HttpPolicy) -> bool:
    if isinstance(exc, TransportError | TransientAnswer):
        return True
    if not isinstance(exc, HttpStatusError):
        return False
    if exc.status != 429 and exc.status < 500:
        return False
    # Asked to wait longer than we ever would: fail now, retry on the next tick.
    return exc.retry_after is None or exc.retry_after <= policy.retry_max_wait


def _failure(exc: Exception, operation: str) -> tuple[SourceError, str] | None:
    """Given what a request raised, return the error to raise and how to count it; None
    for an exception that is not about the request (a bug)."""
    if isinstance(exc, OversizedAnswer):
        return exc, "oversized"
    if isinstance(exc, requests.Timeout):
        return TransportError(f"{operation}: timed out ({reason(exc)})"), "timeout"
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return TransportError(f"{operation}: connection failed ({reason(exc)})"), "error"
    if isinstance(exc, requests.RequestException | ValueError):
        # e.g. an invalid header or URL: our request is wrong, retrying cannot help, and
        # the exception's text may quote a header value (a token), so it is not shown.
        return SourceError(f"{operation}: request could not be sent ({exc.__class__.__name__})"), "error"
    return None


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
