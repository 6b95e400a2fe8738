"""Request slots: a bound on the requests in flight across every account of a run
(``http.max_concurrency_total``), on top of each account's own (``http.max_concurrency``).
The sync sets the bound for the run (sync/parallel.py); HttpClient holds a slot around
each attempt it sends."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from escapia_ical.errors import DeadlineReached

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def set_request_slots(total: int | None) -> None:
    """Bound the requests in flight across every account to ``total`` (None: no bound)."""
    global _slots
    with _slots_lock:
        _slots = threading.BoundedSemaphore(total) if total else None


@contextlib.contextmanager
def request_slot(deadline: float, operation: str) -> Iterator[None]:
    """Hold one of the run's request slots while a request is in flight; raise
    DeadlineReached if none frees up before ``deadline`` (time.monotonic())."""
    slots = _slots
    if slots is None:
        yield
        return
    left = deadline - time.monotonic()
    if not slots.acquire(timeout=None if left == float("inf") else max(left, 0)):
        raise DeadlineReached(f"{operation}: not sent: no request slot (http.max_concurrency_total) freed "
                              "up before the run deadline; left for the next run")
    try:
        yield
    finally:
        slots.release()
