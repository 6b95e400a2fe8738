"""Pacing requests to Escapia: a client-side limit per account, and Escapia's own hints.

Escapia rate-limits partners without publishing the limits. Answers may carry
``X-RateLimit-Remaining`` and ``X-RateLimit-Window`` (ms); when few requests remain in the
window, the pacer spreads the rest over it instead of running into a 429. No pause outlasts
the run: a request whose turn would come after the run's deadline is left for the next run.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from escapia_ical.errors import DeadlineReached
from escapia_ical.sources import stop

Sleep = Callable[[float], None]  # injectable, so that tests never wait


class Pacer:
    """Decides how long the next request must wait. Thread-safe: one per account."""

    def __init__(self, per_minute: int, concurrency: int, *, max_wait: float = 60.0,
                 sleep: Sleep | None = None, clock: Callable[[], float] = time.monotonic):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.max_wait = max_wait  # no pause on Escapia's hints is longer than this
        self.concurrency = max(1, concurrency)
        # The default sleep wakes at once, raising Stopped, when the run is asked to stop.
        self._sleep, self._clock = sleep or stop.sleep, clock
        self._lock = threading.Lock()
        self._next = 0.0  # the earliest start of the next request

    def wait(self, deadline: float = math.inf) -> None:
        """Block until the next request may start.

        Raise DeadlineReached, without waiting or taking a turn, if that start is not before
        ``deadline`` (on the pacer's clock, time.monotonic() by default); Stopped if the run
        is asked to stop while waiting (with the default sleep).
        """
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            if start > now and start >= deadline:
                raise DeadlineReached(f"pacing would hold it {start - now:.1f} s, past the run deadline; "
                                      "left for the next run")
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Slow down when Escapia says few requests remain in its window. An answer with
        Retry-After says exactly how long to wait: the retry honours that instead."""
        if "Retry-After" in headers:
            return
        try:
            remaining = int(headers.get("X-RateLimit-Remaining", ""))
            window = float(headers.get("X-RateLimit-Window", "")) / 1000.0
        except ValueError:
            return
        if window <= 0 or remaining > 2 * self.concurrency:
            return
        gap = min(window if remaining <= 0 else window / remaining, self.max_wait)
        with self._lock:
            self._next = max(self._next, self._clock() + gap)
