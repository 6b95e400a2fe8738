"""Dates as Escapia's APIs send them, parsed strictly."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from escapia_ical.errors import SourceError

# YYYY-MM-DD, optionally a midnight time (.NET serialises dates as datetimes) and/or an
# xs:date time-zone suffix, which says nothing about which night is meant.
_API_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T00:00:00(?:\.0+)?)?(?:Z|[+-]\d{2}:\d{2})?")


_PARSED: dict[str, dt.date] = {}  # the strings read so far: a cold sync reads the same dates 100,000 times


def known_date(value: Any) -> dt.date | None:
    """Return what :func:`parse_api_date` returned for ``value`` before, or None (not read
    yet, or not a string): lets a caller skip describing a date that needs no checking."""
    return _PARSED.get(value) if type(value) is str else None


def parse_api_date(value: Any, what: str) -> dt.date:
    """Given an API date string, return the date. Raise SourceError naming ``what`` if
    it is missing, not a string, not a valid date, or has a time of day other than midnight."""
    day = known_date(value)
    if day is not None:
        return day
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise SourceError(f"{what}: expected a date, got {got}")
    match = _API_DATE.fullmatch(value.strip())
    if not match:
        raise SourceError(f"{what}: not a date: {value[:40]!r}")
    try:
        day = dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise SourceError(f"{what}: not a date: {value[:40]!r}") from None
    if len(_PARSED) < 100_000:
        _PARSED[value] = day
    return day
