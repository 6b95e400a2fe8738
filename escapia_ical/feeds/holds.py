"""What the publish policy remembers between runs: held losses, the account breaker and
operators' acceptances, in ``state_dir/accounts/<account>/policy.json``.

A *hold* is a unit whose latest answer would free nights its feed blocks, without an
explanation; the feed keeps those nights. ``since`` is the first run whose answer freed
exactly these nights (every answer since agreed), ``seen`` the latest. The *breaker* trips
when many units of an account lose nights at once; while it is set no unexplained loss of
the account is published until an operator runs ``escapia-ical accept``.

The file is rewritten whole at the end of each account's run. Anything unreadable or
wrong-shaped in it is reported and ignored: holds then start again from the next answer
(the feed still blocks what it blocked, so nothing is lost by forgetting a hold).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.state import describe, read_state, write_state

log = logging.getLogger(__name__)

VERSION = 1


@dataclass
class Acceptance:
    """An operator's ``accept``: who, when, and (for a unit) the nights accepted."""

    by: str
    at: dt.datetime
    nights: list[Span] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at.isoformat(), "nights": spans.encode(self.nights)}

    @classmethod
    def from_json(cls, data: Any) -> Acceptance:
        nights = spans.decode(data.get("nights", ""))
        if not isinstance(data.get("by"), str) or nights is None:
            raise ValueError("acceptance needs 'by' and 'nights'")
        return cls(data["by"], _moment(data.get("at")), nights)


@dataclass
class Hold:
    """A unit's held loss (see the module docstring)."""

    since: dt.datetime
    seen: dt.datetime
    lost: list[Span]
    booked: bool = False  # an independent view says some of the nights are still booked
    breaker: bool = False  # held by the account breaker: only `accept` publishes it
    accepted: Acceptance | None = None
    # The future nights the feed knew as blocked when the hold began; None: not recorded.
    # What the feed gained since (from answers not trusted to free) may go again.
    known: list[Span] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "seen": self.seen.isoformat(),
                "lost": spans.encode(self.lost), "booked": self.booked, "breaker": self.breaker,
                "accepted": self.accepted.to_json() if self.accepted else None,
                "known": None if self.known is None else spans.encode(self.known)}

    @classmethod
    def from_json(cls, data: Any) -> Hold:
        lost = spans.decode(data.get("lost"))
        flags = [data.get("booked"), data.get("breaker")]
        if lost is None or not all(isinstance(flag, bool) for flag in flags):
            raise ValueError("a hold needs 'lost', 'booked' and 'breaker'")
        accepted = Acceptance.from_json(data["accepted"]) if data.get("accepted") else None
        known = None if data.get("known") is None else spans.decode(data["known"])
        return cls(_moment(data.get("since")), _moment(data.get("seen")), lost, data["booked"],
                   data["breaker"], accepted, known)


@dataclass
class Breaker:
    """The account breaker: tripped at ``since`` when ``units`` of ``fetched`` units lost nights."""

    since: dt.datetime
    units: int
    fetched: int

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "units": self.units, "fetched": self.fetched}

    @classmethod
    def from_json(cls, data: Any) -> Breaker:
        counts = [data.get("units"), data.get("fetched")]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
            raise ValueError("the breaker needs 'units' and 'fetched'")
        return cls(_moment(data.get("since")), data["units"], data["fetched"])


@dataclass
class HoldBook:
    """The policy state of one account."""

    path: Path
    holds: dict[str, Hold] = field(default_factory=dict)
    breaker: Breaker | None = None
    listing_accepted: Acceptance | None = None  # the next empty unit list is accepted

    @classmethod
    def load(cls, folder: Path) -> HoldBook:
        """Return the account's policy state (empty if there is none). Wrong-shaped parts
        are reported once and dropped."""
        path = folder / "policy.json"
        book = cls(path)
        data = read_state(path)
        if data is None:
            return book
        shaped = isinstance(data, dict) and isinstance(data.get("units"), dict)
        if not shaped or data.get("version") != VERSION:
            log.warning("ignoring state %s: not a policy state of version %d", describe(path), VERSION)
            return book
        dropped = 0
        for unit, entry in data["units"].items():
            try:
                book.holds[str(unit)] = Hold.from_json(entry)
            except (AttributeError, KeyError, TypeError, ValueError):
                dropped += 1
        for key, kind in (("breaker", Breaker), ("listing_accepted", Acceptance)):
            if data.get(key) is not None:
                try:
                    setattr(book, key, kind.from_json(data[key]))
                except (AttributeError, KeyError, TypeError, ValueError):
                    dropped += 1
        if dropped:
            log.warning("state %s: ignored %d wrong-shaped part(s)", describe(path), dropped)
        return book

    def save(self) -> None:
        """Write the state atomically. Raise PublishError if it cannot be written."""
        write_state(self.path, {
            "version": VERSION,
            "breaker": self.breaker.to_json() if self.breaker else None,
            "listing_accepted": self.listing_accepted.to_json() if self.listing_accepted else None,
            "units": {unit: hold.to_json() for unit, hold in sorted(self.holds.items())},
        })

    def accept(self, units: list[str] | None, by: str, at: dt.datetime) -> list[tuple[str, Hold]]:
        """Accept the held losses of ``units`` (None: every unit) and, for the whole account,
        an empty unit list once; return the (unit, hold) pairs accepted. The breaker is
        reset when the whole account is accepted, or once no breaker hold is left."""
        chosen = [(u, h) for u, h in sorted(self.holds.items()) if units is None or u in units]
        for _, hold in chosen:
            hold.accepted = Acceptance(by, at, list(hold.lost))
            hold.breaker = False
        if units is None:
            self.listing_accepted = Acceptance(by, at)
        if units is None or not any(h.breaker for h in self.holds.values()):
            self.breaker = None
        return chosen


def _moment(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)  # TypeError/ValueError: the caller drops the entry
    if moment.tzinfo is None:
        raise ValueError("a time without zone")
    return moment
