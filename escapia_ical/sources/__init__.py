"""Escapia sources: the only code that speaks to Escapia.

Every source offers the same two calls and returns the shared model, so the rest of the
path (ranges → feed → publish → status) never knows which API the data came from.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from escapia_ical.config import Account
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources.http import HttpClient, Sleep


class Source(Protocol):
    http: HttpClient
    requests_by_operation: Counter[str]  # requests sent, retries included
    responses_by_status: Counter[tuple[str, str]]  # (operation, HTTP status or "timeout"/"error")

    def list_units(self) -> list[Unit]:
        """Return every unit Escapia distributes to us for this account.

        Raise AuthError if the credentials are refused, SourceError otherwise.
        """
        ...

    def blocked_ranges(self, unit: Unit, window: FeedWindow, *, fresh: bool = False) -> list[BlockedRange]:
        """Return the unit's blocked ranges overlapping ``window``, half-open, unmerged.

        ``fresh`` asks for a new answer from Escapia even if one was cached this run (the
        shrink guard's second opinion). Raise SourceError if they cannot be fetched or the
        answer is not usable.
        """
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

