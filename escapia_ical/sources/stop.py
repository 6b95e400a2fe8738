"""Stopping a run early (SIGTERM): one process-wide switch that every wait and request obeys.

After :func:`request_stop`, every request in flight (of every HttpClient) is aborted at once
(its socket shut down by :mod:`.watchdog`), every :func:`sleep` wakes at once, nothing is
retried, and new requests fail immediately with :class:`Stopped`. What was published so far
is kept; the next run does the rest.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from escapia_ical.errors import SourceError


class Stopped(SourceError):
    """The run was asked to stop (e.g. SIGTERM): the request or wait was given up."""


# A Condition on an RLock, not an Event: request_stop() may run in a signal handler on the
# main thread while that same thread is inside sleep() holding the lock; re-entering an RLock
# cannot deadlock, re-entering an Event's plain Lock could.
_condition = threading.Condition(threading.RLock())
_stopping = False
_on_stop: list[Callable[[], None]] = []


def request_stop() -> None:
    """Stop every wait and request of the process now (idempotent; callable from a signal
    handler). Return at once: the stopped threads raise :class:`Stopped` on their own."""
    global _stopping
    _stopping = True
    with _condition:
        _condition.notify_all()
        callbacks = list(_on_stop)
    for callback in callbacks:
        callback()


def reset_stop() -> None:
    """Undo :func:`request_stop` (for tests: a process normally stops only once)."""
    global _stopping
    with _condition:
        _stopping = False


def stop_requested() -> bool:
    """Return whether :func:`request_stop` was called (and not reset)."""
    return _stopping


def on_stop(callback: Callable[[], None]) -> None:
    """Call ``callback()`` at every :func:`request_stop` (e.g. to abort requests in flight)."""
    with _condition:
        _on_stop.append(callback)


def leave_signals_to_main() -> None:
    """Block SIGTERM and SIGINT in the calling thread: the initializer of every worker thread.

    The kernel gives a signal sent to the process to any thread that does not block it, but
    Python runs the handler only in the main thread, and only once that thread runs again:
    a main thread waiting for a worker (``future.result()``) is not woken by a signal that
    a worker took, and the handler that would stop the workers never runs (seen: SIGTERM
    ignored until the 5-second requests in flight ended, under load). Blocked in every
    other thread, the signal goes to the main thread and interrupts its wait at once.
    """
    if hasattr(signal, "pthread_sigmask"):  # POSIX
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def sleep(seconds: float) -> None:
    """Wait ``seconds``, the default sleep of HttpClient and Pacer (tenacity backoff, pacing).

    Raise Stopped at once if the run is (or gets) stopped before the time is up.
    """
    end = time.monotonic() + max(0.0, seconds)
    with _condition:
        while not _stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            _condition.wait(left)
    raise Stopped("stopped while waiting to retry or pace a request")
