"""Channel bookings against Escapia's calendar: echoes, unsynced bookings, double bookings.
Pure functions, no I/O.

*Escapia's calendar* is what our feed for the unit shows: the whole blocked ranges stored
with it (a stay and the stays it overlaps merged; back-to-back stays apart), the nights it
blocks because Escapia's answer did not cover them included. So a night Escapia did not
speak for is never reported as free.

An **echo** is our own feed coming back: a channel imports our feed and exports those blocks
again ("Not available"), often under UIDs of its own, merged or cut around its own
bookings. An event is an echo if its UID is in one of our UID domains; if its dates are
exactly those of a block we publish or published lately (a channel polls our feed only
every 1-12 hours, so a block Escapia released this morning may still come back this
afternoon); or if the channel words it as a block (parse.py) and every night of it is one
we block or blocked lately. Such an event says nothing Escapia does not already say. A
*booking* inside a stay of other dates stays a double booking, however it is worded. Our
SUMMARY is not used to tell echoes: ours ("Reserved" by default) is Airbnb's own word for
a real booking.

Of the other events, from today on:

``unsynced``        nights of the booking Escapia shows free: Escapia can sell them again.
``double_booking``  nights of the booking Escapia also blocks for a stay of other dates
                    (the same dates are the same booking, entered in both; a work order
                    of ours for the booking is no other stay). A block counts as a
                    booking here: Booking.com words its reservations "CLOSED - Not
                    available".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.imports.parse import ChannelEvent

UNSYNCED, DOUBLE_BOOKING = "unsynced", "double_booking"
KINDS = (UNSYNCED, DOUBLE_BOOKING)


@dataclass(frozen=True, order=True)
class Conflict:
    """A channel booking (``start``..``end``, checkout day exclusive) of ``unit`` on
    ``channel`` that disagrees with Escapia on ``nights``."""

    unit: str
    channel: str
    kind: str
    start: dt.date
    end: dt.date
    nights: tuple[Span, ...]

    @property
    def id(self) -> str:
        """Stable while the booking keeps its dates: a moved booking is a new conflict."""
        return f"{self.unit}|{self.channel}|{self.kind}|{self.start}/{self.end}"

    def describe(self) -> str:
        """One line for an operator (dates only: nothing of the guest is known or shown)."""
        nights = spans.describe(list(self.nights))
        count = spans.count(list(self.nights))
        booking = f"{self.channel} booking {spans.describe([(self.start, self.end)])}"  # first..last night
        if self.kind == UNSYNCED:
            return f"{booking}: Escapia shows {count} of its nights free ({nights}) and can sell them again"
        return f"{booking} overlaps another stay in Escapia on {count} nights ({nights}): a double booking"


def find_conflicts(unit: str, channel: str, events: Iterable[ChannelEvent], escapia: Iterable[Span],
                   echoes: Iterable[Span], today: dt.date, until: dt.date,
                   own: Mapping[ChannelEvent, Span] | None = None,
                   blocks_are_bookings: bool = False) -> list[Conflict]:
    """Return the conflicts of one channel's ``events`` for ``unit`` against ``escapia``
    (the whole blocked ranges our feed shows), on the nights from ``today`` up to
    ``until``. ``echoes``: ranges we published lately, and ours as the window cuts them (an
    event with exactly those dates, or a block within their nights, is our own block come
    back). ``own``: the nights Escapia blocks with a work order of ours for an event, in
    force now (imports/writeback.py): that work order is not another stay of that event,
    and the nights around it are judged without it. ``blocks_are_bookings``: the export words its
    bookings as blocks (Booking.com), so a block within our nights is a booking there, an
    echo only with exactly our dates."""
    own = own or {}
    ranges = sorted(set(escapia))
    blocked = spans.normalize(ranges)
    echoed = set(echoes)
    same = set(ranges) | set(blocked) | echoed
    ours = spans.union(blocked, echoed)
    found = []
    for event in events:
        whole = (event.start, event.end)
        # (With a work order of ours for it, Escapia's block of the same dates is that work order.)
        if event.ours or whole in (echoed if event in own else same) \
                or (event.block and not blocks_are_bookings and not spans.subtract([whole], ours)):
            continue
        ahead = spans.clip([whole], today, until)
        if not ahead:
            continue
        free = spans.subtract(ahead, blocked)
        if free:
            found.append(Conflict(unit, channel, UNSYNCED, event.start, event.end, tuple(free)))
        # (A stay on the very nights of our work order cannot be told from it: not reported.)
        others = spans.subtract(blocked, [own[event]]) if event in own else blocked
        taken = spans.intersect(ahead, others)
        if taken:
            found.append(Conflict(unit, channel, DOUBLE_BOOKING, event.start, event.end, tuple(taken)))
    return sorted(set(found))
