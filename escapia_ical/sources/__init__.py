"""Escapia sources: the only code that speaks to Escapia.

Every source offers the same two calls and returns the shared model, so the rest of the
path (ranges → feed → publish → status) never knows which API the data came from.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from escapia_ical.config import Account
from escapia_ical.feeds.spans import Span
from escapia_ical.model import Explanation, FeedWindow, Unit, UnitCalendar
from escapia_ical.sources.http import HttpClient, Sleep


class Source(Protocol):
    http: HttpClient
    requests_by_operation: Counter[str]  # requests sent, retries included
    responses_by_status: Counter[tuple[str, str]]  # (operation, HTTP status or "timeout"/"error")
    notes: Notes  # oddities of this run's answers, reported once per account

    def list_units(self) -> list[Unit]:
        """Return every unit Escapia distributes to us for this account.

        Raise AuthError if the credentials are refused, SourceError otherwise.
        """
        ...

    def calendar(self, unit: Unit, window: FeedWindow) -> UnitCalendar:
        """Return the unit's blocked ranges overlapping ``window`` (half-open, unmerged) and
        the nights of ``window`` the answer covers (the feed window and the margin past it,
        sync/margin.py: never more than was asked). Raise SourceError if it cannot be fetched or the
        answer is not usable (malformed, contradictory, or a unit's calendar twice)."""
        ...

    def explain(self, unit: Unit, nights: list[Span]) -> Explanation:
        """Ask an independent view of Escapia which of ``nights`` are free and which booked
        (HSAPI: the unit's reservations and holds; EscapiaNET: the calendar operation this
        account does not read calendars with). Raise SourceError if it cannot be asked."""
        ...


def make_source(account: Account, state_dir: Path, *, sleep: Sleep | None = None,
                now: Callable[[], dt.datetime] | None = None, deadline: float = math.inf) -> Source:
    """Return the source client for ``account``; no retry starts after ``deadline``."""
    if account.api == "escapianet":
        from escapia_ical.sources.escapianet import EscapianetSource

        source: Source = EscapianetSource(account, sleep=sleep)
    else:
        from escapia_ical.sources.hsapi import HsapiSource

        source = HsapiSource(account, state_dir, sleep=sleep, now=now)
    source.http.deadline = deadline
    return source



class Notes:
    """Oddities a source saw in one run, counted per kind so that a server misbehaving for
    every unit costs one log line per account, not one per range (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, set[str], str]] = {}  # kind -> (count, units, first example)

    def add(self, kind: str, unit_id: str, example: str, count: int = 1) -> None:
        with self._lock:
            seen, units, first = self._seen.get(kind, (0, set(), example))
            units.add(unit_id)
            self._seen[kind] = (seen + count, units, first)

    def lines(self) -> list[str]:
        """Return one line per kind: ``"12 ranges ignored: <kind> (2 units; first: ...)"``."""
        with self._lock:
            return [f"{count} {kind} ({len(units)} unit{'s' if len(units) != 1 else ''}; first: {first})"
                    for kind, (count, units, first) in sorted(self._seen.items())]
