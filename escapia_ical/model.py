"""The small model every source returns and every later step consumes.

Dates are ``datetime.date``. A :class:`BlockedRange` is half-open: ``start`` is the first
blocked night and ``end`` the checkout day (exclusive), exactly as it appears in the feed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


# slots: a third cheaper to make (a cold sync of 10,000 units makes over a million ranges
# and blocks: feeds/ranges.py, feeds/profiles.py are slotted too), and smaller.
@dataclass(frozen=True, order=True, slots=True)
class BlockedRange:
    """Blocked nights ``start`` .. ``end - 1 day``; ``end`` is the checkout day."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty or inverted range {self.start}..{self.end}")

    @property
    def nights(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True)
class Unit:
    """A unit Escapia distributes to us: ``id`` is what names its feed file.

    For HSAPI ``id`` is the unit's nativePMSID; for EscapiaNET the unit code.
    """

    id: str
    name: str
    code: str = ""


@dataclass(frozen=True)
class FeedWindow:
    """The dates a feed covers: ``[start, end)``."""

    start: dt.date
    end: dt.date

    @classmethod
    def around(cls, today: dt.date, past_days: int, future_days: int) -> FeedWindow:
        return cls(today - dt.timedelta(days=past_days), today + dt.timedelta(days=future_days))

    def future(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """Return the window's nights from ``today`` on: the ones a channel can still sell."""
        return max(today, self.start), self.end


@dataclass(frozen=True)
class UnitCalendar:
    """One unit's calendar as a source read it: its blocked ranges (half-open, possibly
    overlapping) and the spans of nights the answer really speaks for. A night outside
    ``covered`` is unknown, never free: Escapia may answer less than was asked."""

    ranges: tuple[BlockedRange, ...]
    covered: tuple[tuple[dt.date, dt.date], ...]


@dataclass(frozen=True)
class Explanation:
    """What an independent view of Escapia (reservations, or the other calendar operation)
    says about nights an answer would free: ``free`` and ``booked`` are subsets of the nights
    asked about; a night in neither is one the view does not cover."""

    view: str  # what was asked, for messages: "Escapia's reservations", "UnitCalendarAvail"
    free: tuple[tuple[dt.date, dt.date], ...]
    booked: tuple[tuple[dt.date, dt.date], ...]
