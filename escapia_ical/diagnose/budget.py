"""The request budget of one diagnosis: every attempt counted, timed and bounded.

A :class:`RequestBudget` is installed as the source's HTTP observer (``HttpClient.observer``),
so retries and token fetches count too: the diagnosis never sends more than ``limit``
requests, whatever the probes ask. It also keeps what the report needs of each answer — how
long it took and the rate-limit headers — and shows progress on a terminal.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from typing import TextIO

from escapia_ical.config.positions import one_line
from escapia_ical.errors import SourceError

REQUEST_LIMIT = 50
RATE_LIMIT_PREFIX = "x-ratelimit-"
MAX_HEADER_VALUE = 80  # a header value is shown at most this long


class BudgetSpent(SourceError):
    """The diagnosis already sent as many requests as it may: this one was not sent."""


class RequestBudget:
    """Counts the requests of one diagnosis and refuses those beyond ``limit`` (one thread)."""

    def __init__(self, limit: int = REQUEST_LIMIT, progress: TextIO | None = None, label: str = ""):
        self.limit = limit
        self.sent = 0
        self.refused = 0
        self.by_operation: Counter[str] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.seconds: dict[str, list[float]] = {}
        self.rate_headers: dict[str, dict] = {}  # name as sent -> {"answers", "first", "last"}
        self._progress, self._label = progress, label

    # -- the RequestObserver protocol (sources/http.py) -----------------------------------
    def sending(self, operation: str) -> None:
        """Count the request; raise BudgetSpent instead if the budget is spent."""
        if self.sent >= self.limit:
            self.refused += 1
            raise BudgetSpent(f"{operation}: not sent: the diagnosis's budget of {self.limit} requests "
                              "is spent")
        self.sent += 1
        self.by_operation[operation] += 1
        if self._progress is not None:
            self._progress.write(f"\r\x1b[K{self._label}request {self.sent}/{self.limit}: {operation}")
            self._progress.flush()

    def answered(self, operation: str, outcome: str, headers: Mapping[str, str], seconds: float) -> None:
        """Keep the attempt's outcome, its duration and any rate-limit header."""
        self.outcomes[(operation, outcome)] += 1
        self.seconds.setdefault(operation, []).append(seconds)
        for name, value in headers.items():
            if name.lower().startswith(RATE_LIMIT_PREFIX) or name.lower() == "retry-after":
                shown = one_line(str(value))[:MAX_HEADER_VALUE]
                seen = self.rate_headers.setdefault(one_line(name)[:MAX_HEADER_VALUE],
                                                    {"answers": 0, "first": shown, "last": shown})
                seen["answers"] += 1
                seen["last"] = shown

    # -- what the report shows --------------------------------------------------------
    def finish_progress(self) -> None:
        """Clear the progress line (if one was drawn)."""
        if self._progress is not None and self.sent:
            self._progress.write("\r\x1b[K")
            self._progress.flush()

    def timings(self) -> dict[str, dict[str, float | int]]:
        """Return ``{operation: {"count", "min", "median", "max"}}``, in milliseconds."""
        return {operation: {"count": len(values),
                            "min": _ms(min(values)),
                            "median": _ms(statistics.median(values)),
                            "max": _ms(max(values))}
                for operation, values in sorted(self.seconds.items())}

    def summary(self) -> dict:
        """Return what was sent, for the JSON report."""
        return {"sent": self.sent, "limit": self.limit, "refused": self.refused,
                "by_operation": dict(sorted(self.by_operation.items())),
                "outcomes": {f"{op} {outcome}": n for (op, outcome), n in sorted(self.outcomes.items())}}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
