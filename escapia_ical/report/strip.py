"""The status page's strip calendar: one cell per night from today, each with its kind.

Kinds come from what the state stores (sync/stamps.py): the ranges a feed shows, the
placeholder nights published blocked because Escapia's answer did not cover them
(``unknown``), the losses the publish policy holds back (feeds/holds.py) and the nights
of open conflicts with channel bookings (imports/, from the status). Escapia's
reason for a block (a stay, an owner hold, maintenance) is stored only for accounts with
feed profiles (the entry's ``kinds``, sync/profiles.py), and the strip does not read it:
every stored range is "blocked"; :func:`range_kind` is where a stored kind would be read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, NamedTuple

from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.sync.stamps import stored_ranges

STRIP_NIGHTS = 90

# Every kind a cell can have, with its legend; the order is the legend's.
NIGHT_KINDS = {
    "free": "free: the feed does not block it",
    "blocked": "blocked: a stay, an owner hold or maintenance (this page does not tell Escapia's "
               "reasons apart)",
    "unknown": "blocked as a precaution: Escapia's answer did not cover this night",
    "held": "blocked although Escapia freed it: a loss the publish policy holds (see accept)",
    "conflict": "a channel booking disagrees with Escapia on this night (unsynced or a double booking: "
                "see the account's notes)",
}


class Night(NamedTuple):
    day: dt.date
    kind: str


def range_kind(entry: dict[str, Any], start: dt.date, end: dt.date) -> str:
    """Return the kind of the stored range [start, end) of a feeds.json ``entry``.
    The hook for owner holds and maintenance (stored, as ``kinds``, only where feed
    profiles need them)."""
    return "blocked"


def night_strip(entry: dict[str, Any] | None, held: Iterable[Span], today: dt.date,
                nights: int = STRIP_NIGHTS, conflicts: Iterable[Span] = ()) -> list[Night] | None:
    """Return ``nights`` Nights from ``today`` for a unit's feeds.json ``entry``, the
    nights its publish policy holds (``held``) and the nights of its open conflicts with
    channel bookings (``conflicts``, imports/); None if the entry stores no ranges (never
    published, or its state is unreadable: an all-free strip would be a lie)."""
    ranges = stored_ranges(entry)
    if entry is None or ranges is None:
        return None
    end = today + dt.timedelta(days=nights)
    kinds: dict[dt.date, str] = {}
    layers = [([(r.start, r.end)], range_kind(entry, r.start, r.end)) for r in ranges]
    layers.append((spans.decode(entry.get("unknown", "")) or [], "unknown"))
    layers.append((list(held), "held"))
    layers.append((list(conflicts), "conflict"))
    for layer, kind in layers:  # later layers say more about a night than earlier ones
        for start, stop in spans.normalize(layer):
            day = max(start, today)
            while day < min(stop, end):
                kinds[day] = kind
                day += dt.timedelta(days=1)
    days = (today + dt.timedelta(days=i) for i in range(nights))
    return [Night(day, kinds.get(day, "free")) for day in days]
