"""The sandbox's data: units, reservations (guest stays and holds), a versioned change log.

Nothing here knows about HTTP. All dates are ``datetime.date``; a reservation occupies the
nights ``start .. end - 1`` (``end`` is the departure day, as in HSAPI's ``stayDateRange``).
The store is not thread-safe by itself: :class:`~escapia_ical.sandbox.server.Sandbox` holds a
lock around every call.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

PMCID = "1020"
HOLD_TYPES = ("None", "Owner", "Maintenance", "SoftBlock", "GroupSoftBlock", "GuestOfOwner", "Unavailable")
ONE_DAY = dt.timedelta(days=1)

# (display, ascii for e-mail addresses); apostrophes and diacritics on purpose.
FIRST_NAMES = [("Ana", "ana"), ("Zoë", "zoe"), ("José", "jose"), ("Mele", "mele"), ("Kai", "kai"),
               ("Liam", "liam"), ("Søren", "soren"), ("Aiko", "aiko"), ("Grace", "grace"),
               ("Noah", "noah"), ("Priya", "priya"), ("Olivia", "olivia"), ("Björn", "bjorn")]
LAST_NAMES = [("O'Brien", "obrien"), ("Müller", "mueller"), ("Kahananui", "kahananui"),
              ("Nguyễn", "nguyen"), ("Smith", "smith"), ("García", "garcia"), ("Tanaka", "tanaka"),
              ("Johansson", "johansson"), ("Patel", "patel"), ("Kealoha", "kealoha")]
CITIES = [("Portland", "OR", "97205"), ("Denver", "CO", "80202"), ("Austin", "TX", "78701"),
          ("Seattle", "WA", "98101"), ("Honolulu", "HI", "96813"), ("Boston", "MA", "02108")]
STREETS = ["Maple Ave", "Kamehameha Hwy", "Ocean Blvd", "2nd St", "Pine Ridge Rd", "Elm Ct"]


@dataclass
class Unit:
    id: str  # nativePMSID
    code: str
    name: str
    headline: str
    num: int  # the integer ``id`` of UnitSummary
    bedrooms: float
    bathrooms: float
    sleeps: float
    rate: float  # nightly rent


@dataclass
class Guest:
    first: str
    last: str
    email: str
    area_code: str
    phone: str
    street: str
    city: str
    state: str
    zip: str
    num: int


@dataclass
class Reservation:
    id: str  # nativePMSID
    num: int
    unit_id: str
    start: dt.date
    end: dt.date  # departure day (exclusive)
    hold_type: str  # "None" for a guest stay
    created: dt.datetime
    guest: Guest | None
    adults: int
    children: int
    rent: float
    tax: float
    fee: float
    total: float
    door_code: str
    active: bool = True

    @property
    def is_hold(self) -> bool:
        return self.hold_type != "None"


@dataclass(frozen=True)
class Change:
    version: int
    reservation_id: str
    change_type: str  # Create | Update | Delete
    time: dt.datetime


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class SandboxData:
    """In-memory PMC: units, reservations and the change log (version 1, 2, ...)."""

    def __init__(self, today: dt.date, seed: int = 1020) -> None:
        self.today = today
        self.rng = random.Random(seed)
        self.units: dict[str, Unit] = {}
        self.reservations: dict[str, Reservation] = {}
        self._by_unit: dict[str, list[Reservation]] = {}
        self.changes: list[Change] = []  # every change ever; the feed is changes[_log_start:]
        self._log_start = 0  # moved on by restart_change_log
        self._next_num = 300001
        # Seeded changes get deterministic times (yesterday, one second apart).
        self._seed_clock: dt.datetime | None = dt.datetime.combine(
            today - ONE_DAY, dt.time(), tzinfo=dt.UTC)

    # -- building ------------------------------------------------------------------------
    def add_unit(self, unit_id: str, code: str, name: str, num: int, *, headline: str = "",
                 bedrooms: float = 2, bathrooms: float = 1, sleeps: float = 4,
                 rate: float = 250.0) -> Unit:
        if unit_id in self.units:
            raise ValueError(f"duplicate unit {unit_id!r}")
        unit = Unit(unit_id, code, name, headline or f"{name} — book direct", num,
                    bedrooms, bathrooms, sleeps, rate)
        self.units[unit_id] = unit
        self._by_unit[unit_id] = []
        return unit

    def end_seeding(self) -> None:
        """From now on changes are stamped with the wall clock."""
        self._seed_clock = None

    def _now(self) -> dt.datetime:
        if self._seed_clock is None:
            return utc_now()
        self._seed_clock += dt.timedelta(seconds=1)
        return self._seed_clock

    def _record(self, reservation_id: str, change_type: str) -> None:
        version = len(self.changes) - self._log_start + 1
        self.changes.append(Change(version, reservation_id, change_type, self._now()))

    def _make_guest(self, num: int) -> Guest:
        rng = self.rng
        first, first_ascii = rng.choice(FIRST_NAMES)
        last, last_ascii = rng.choice(LAST_NAMES)
        city, state, zip_code = rng.choice(CITIES)
        return Guest(first, last, f"{first_ascii}.{last_ascii}{rng.randint(1, 99)}@example.com",
                     rng.choice(["503", "808", "617", "206"]), f"555-01{rng.randint(0, 99):02d}",
                     f"{rng.randint(10, 9999)} {rng.choice(STREETS)}", city, state, zip_code,
                     num + 500000)

    # -- mutations -----------------------------------------------------------------------
    def add_reservation(self, unit_id: str, start: dt.date, end: dt.date,
                        hold_type: str | None = None) -> str:
        """Add a guest stay (``hold_type`` None/"None") or a hold; record a Create change."""
        unit = self.units[unit_id]  # KeyError for an unknown unit
        hold = "None" if hold_type in (None, "", "None") else hold_type
        if hold not in HOLD_TYPES:
            raise ValueError(f"unknown holdType {hold_type!r}; one of {HOLD_TYPES}")
        if not end > start:
            raise ValueError(f"departure {end} must be after arrival {start}")
        num = self._next_num
        self._next_num += 1
        nights = (end - start).days
        rng = self.rng
        guest = None if hold != "None" else self._make_guest(num)
        rent = 0.0 if guest is None else round(float(unit.rate) * nights, 2)
        tax = round(rent * 0.1325, 2)
        fee = 0.0 if guest is None else round(35 + rent * 0.06, 2)
        created = self._now() if self._seed_clock is None else dt.datetime.combine(
            min(start, self.today) - dt.timedelta(days=rng.randint(3, 90)),
            dt.time(rng.randint(8, 20), rng.randint(0, 59)), tzinfo=dt.UTC)
        res = Reservation(str(num), num, unit_id, start, end, hold, created, guest,
                          rng.randint(1, 4) if guest else 0, rng.randint(0, 3) if guest else 0,
                          rent, tax, fee, round(rent + tax + fee, 2), f"{rng.randint(0, 9999):04d}")
        self.reservations[res.id] = res
        self._by_unit[unit_id].append(res)
        self._record(res.id, "Create")
        return res.id

    def _active(self, reservation_id: str) -> Reservation:
        res = self.reservations.get(reservation_id)
        if res is None or not res.active:
            raise KeyError(reservation_id)
        return res

    def cancel_reservation(self, reservation_id: str) -> None:
        res = self._active(reservation_id)
        res.active = False
        self._by_unit[res.unit_id].remove(res)
        self._record(res.id, "Delete")

    def move_reservation(self, reservation_id: str, start: dt.date, end: dt.date) -> None:
        res = self._active(reservation_id)
        if not end > start:
            raise ValueError(f"departure {end} must be after arrival {start}")
        res.start, res.end = start, end
        self._record(res.id, "Update")

    # -- queries -------------------------------------------------------------------------
    def active(self, unit_id: str) -> list[Reservation]:
        """Active reservations and holds of a unit, by (arrival, departure, id)."""
        return sorted(self._by_unit[unit_id], key=lambda r: (r.start, r.end, r.num))

    def get(self, reservation_id: str) -> Reservation | None:
        res = self.reservations.get(reservation_id)
        return res if res is not None and res.active else None

    def overlapping(self, unit_id: str, start: dt.date, last: dt.date) -> list[Reservation]:
        """Reservations with a night in ``start .. last`` (both inclusive), whole, unmerged."""
        return [r for r in self.active(unit_id) if r.start <= last and r.end > start]

    def blocked_nights(self, unit_id: str, start: dt.date, end: dt.date) -> set[dt.date]:
        nights: set[dt.date] = set()
        for r in self._by_unit[unit_id]:
            d = max(r.start, start)
            while d < min(r.end, end):
                nights.add(d)
                d += ONE_DAY
        return nights

    def changes_since(self, start_version: int, limit: int = 100) -> tuple[list[Change], int]:
        """Changes after ``start_version``, collapsed to the latest per reservation, at most
        ``limit``; the second value is the endVersion to pass back next time."""
        latest: dict[str, Change] = {}
        end = start_version
        for change in self.changes[self._log_start + max(start_version, 0):]:  # version = position + 1
            if change.reservation_id not in latest and len(latest) == limit:
                break  # a page is full; the rest comes with the next call
            latest.pop(change.reservation_id, None)
            latest[change.reservation_id] = change  # re-inserted: dict stays in version order
            end = change.version
        return list(latest.values()), end

    @property
    def version(self) -> int:
        return len(self.changes) - self._log_start

    def restart_change_log(self) -> None:
        """Start the change feed again at version 0 (the next change is version 1); the
        reservations stay, and so does the history EscapiaNET's LastUpdated is read from."""
        self._log_start = len(self.changes)

    def search_units(self, code: str | None = None, name_or_code: str | None = None) -> list[Unit]:
        units = sorted(self.units.values(), key=lambda u: u.code)
        if code:
            units = [u for u in units if u.code == code]
        if name_or_code:
            needle = name_or_code.casefold()
            units = [u for u in units if needle in u.code.casefold() or needle in u.name.casefold()]
        return units

    def search_reservations(self, unit_ids: list[str] | None,
                            date_range: tuple[dt.date, dt.date] | None, method: str = "Overlap",
                            hold_types: list[str] | None = None) -> list[Reservation]:
        """Active reservations, by (arrival, id). ``date_range`` is inclusive at both ends:
        Overlap = a night in it, StartDate = arrival in it, EndDate = departure in it."""
        found = []
        for uid in (unit_ids if unit_ids else list(self.units)):
            for r in self._by_unit.get(uid, ()):
                if hold_types and r.hold_type not in hold_types:
                    continue
                if date_range is not None:
                    s, e = date_range
                    key = {"StartDate": s <= r.start <= e, "EndDate": s <= r.end <= e}
                    if not key.get(method, r.start <= e and r.end > s):
                        continue
                found.append(r)
        return sorted(found, key=lambda r: (r.start, r.num))
