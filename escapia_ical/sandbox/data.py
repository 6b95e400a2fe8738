"""The sandbox's data: units, reservations (guest stays and holds), a versioned change log,
work orders and effective contract dates.

Nothing here knows about HTTP. All dates are ``datetime.date``; a reservation occupies the
nights ``start .. end - 1`` (``end`` is the departure day, as in HSAPI's ``stayDateRange``).
A work order that removes its unit from availability occupies ``start .. end`` *inclusive*
(``endDateWhenUnitIsRemovedFromAvailability`` is the last night removed: invented, the
contract is silent) until it is Completed; work orders never enter the change log.
A contract block (invented shape: the FAQ only names "effective contract dates" as a cause of
non-availability) occupies ``start .. end - 1`` like a stay, but is no reservation: it shows
in non-availability and calendars only, never in the change log or reservation searches.
The store is not thread-safe by itself: :class:`~escapia_ical.sandbox.server.Sandbox` holds a
lock around every call.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

PMCID = "1020"
WORK_ORDER_STATUSES = ("Pending", "Started", "Completed", "Assigned", "Entered", "Approved", "Scheduled",
                       "Posted")  # the contract's WorkOrder.status enum
HOLD_TYPES = ("None", "Owner", "Maintenance", "SoftBlock", "GroupSoftBlock", "GuestOfOwner", "Unavailable")
# The kind of block escapia-ical should label each cause with (the sandbox's own table, so
# that tests compare the client's mapping with an independent one).
KIND_OF_HOLD_TYPE = {"None": "reservation", "Owner": "owner", "GuestOfOwner": "owner",
                     "Maintenance": "maintenance", "SoftBlock": "hold", "GroupSoftBlock": "hold",
                     "Unavailable": "hold"}
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


@dataclass
class WorkOrder:
    id: str  # nativePMSID
    num: int  # the integer ``id``
    unit_id: str
    status: str  # one of WORK_ORDER_STATUSES
    removes: bool  # workOrderRemovesUnitFromAvailability
    start: dt.date | None  # startDateWhenUnitIsRemovedFromAvailability
    end: dt.date | None  # endDateWhenUnitIsRemovedFromAvailability: the last night removed
    modified: dt.datetime
    description: str = ""

    @property
    def nights(self) -> tuple[dt.date, dt.date] | None:
        """The nights it blocks, half-open (``end`` + 1 day), or None if it blocks none."""
        if not self.removes or self.status == "Completed" or self.start is None or self.end is None:
            return None
        return self.start, self.end + ONE_DAY


@dataclass(frozen=True)
class ContractBlock:
    id: str
    unit_id: str
    start: dt.date
    end: dt.date  # the day after the last night blocked, as a stay's departure


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
        self.work_orders: dict[str, WorkOrder] = {}
        self._next_work_order = 7001
        self.contract_blocks: dict[str, ContractBlock] = {}
        self._next_contract_block = 1
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

    def add_work_order(self, unit_id: str, start: dt.date | None, end: dt.date | None, *,
                       status: str = "Scheduled", removes: bool = True, description: str = "") -> str:
        """Add a work order (``end``: the last night removed); return its nativePMSID. No
        change is recorded: work orders are not reservations."""
        if unit_id not in self.units:
            raise KeyError(unit_id)
        num = self._next_work_order
        self._next_work_order += 1
        order = WorkOrder(str(num), num, unit_id, "Pending", False, None, None, self._now(), description)
        self.work_orders[order.id] = order
        try:
            self.change_work_order(order.id, status=status, removes=removes, start=start, end=end)
        except ValueError:
            del self.work_orders[order.id]
            raise
        return order.id

    def change_work_order(self, order_id: str, **changes) -> None:
        """Change a work order's ``unit_id``, ``status``, ``removes``, ``start``, ``end`` or
        ``description``. Raise KeyError if unknown, ValueError if the result is not valid."""
        order = self.work_orders[order_id]
        unknown = set(changes) - {"unit_id", "status", "removes", "start", "end", "description"}
        if unknown:
            raise ValueError(f"work orders have no {sorted(unknown)}")
        merged = {**order.__dict__, **changes}
        if merged["status"] not in WORK_ORDER_STATUSES:
            raise ValueError(f"unknown status {merged['status']!r}; one of {WORK_ORDER_STATUSES}")
        if merged["unit_id"] not in self.units:
            raise ValueError(f"unknown unit {merged['unit_id']!r}")
        if merged["removes"] and (merged["start"] is None or merged["end"] is None):
            raise ValueError("a work order that removes its unit from availability needs start and end")
        if merged["start"] and merged["end"] and merged["end"] < merged["start"]:
            raise ValueError(f"end {merged['end']} is before start {merged['start']}")
        for key, value in changes.items():
            setattr(order, key, value)
        order.modified = self._now()

    def add_contract_block(self, unit_id: str, start: dt.date, end: dt.date) -> str:
        """Block the nights ``start .. end - 1`` for the unit's contract dates; return an id.
        No change is recorded: contract dates are not reservations."""
        if unit_id not in self.units:
            raise KeyError(unit_id)
        if not end > start:
            raise ValueError(f"end {end} must be after start {start}")
        block = ContractBlock(f"C{self._next_contract_block}", unit_id, start, end)
        self._next_contract_block += 1
        self.contract_blocks[block.id] = block
        return block.id

    def remove_contract_block(self, block_id: str) -> None:
        """End a contract block (KeyError if unknown)."""
        del self.contract_blocks[block_id]

    # -- queries -------------------------------------------------------------------------
    def contract_spans(self, unit_id: str) -> list[tuple[dt.date, dt.date]]:
        """``[first night, day after the last)`` of the unit's contract blocks, sorted."""
        return sorted((b.start, b.end) for b in self.contract_blocks.values() if b.unit_id == unit_id)

    def blocking_work_orders(self, unit_id: str) -> list[WorkOrder]:
        """Work orders removing the unit from availability now (not Completed), by start."""
        found = [w for w in self.work_orders.values() if w.unit_id == unit_id and w.nights]
        return sorted(found, key=lambda w: (w.start, w.end, w.num))

    def blocking_spans(self, unit_id: str) -> list[tuple[dt.date, dt.date]]:
        """``[first night, day after the last)`` of every active reservation, hold, blocking
        work order and contract block of the unit."""
        return [span for spans in self.blocking_spans_by_kind(unit_id).values() for span in spans]

    def blocking_spans_by_kind(self, unit_id: str) -> dict[str, list[tuple[dt.date, dt.date]]]:
        """:meth:`blocking_spans` by the kind escapia-ical should label them with: stays and
        holds by ``holdType``, work orders ``maintenance``, contract blocks ``other``."""
        found: dict[str, list[tuple[dt.date, dt.date]]] = {}
        for r in self.active(unit_id):
            found.setdefault(KIND_OF_HOLD_TYPE[r.hold_type], []).append((r.start, r.end))
        for w in self.blocking_work_orders(unit_id):
            if w.nights:
                found.setdefault("maintenance", []).append(w.nights)
        for span in self.contract_spans(unit_id):
            found.setdefault("other", []).append(span)
        return found

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
        """Nights ``start <= d < end`` a reservation, hold, work order or contract blocks."""
        return _nights(self.blocking_spans(unit_id), start, end)

    def blocked_nights_by_kind(self, unit_id: str, start: dt.date, end: dt.date) -> dict[str, set[dt.date]]:
        """:meth:`blocked_nights` by kind (see :meth:`blocking_spans_by_kind`); a night may
        carry several kinds; kinds without a night in the range are left out."""
        by_kind = self.blocking_spans_by_kind(unit_id)
        found = {kind: _nights(spans, start, end) for kind, spans in by_kind.items()}
        return {kind: nights for kind, nights in found.items() if nights}

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

    def search_work_orders(self, unit_id: str | None, statuses: list[str] | None,
                           start_range: tuple[dt.date, dt.date] | None) -> list[WorkOrder]:
        """Work orders by id; ``start_range`` (inclusive at both ends) filters on
        ``startDateWhenUnitIsRemovedFromAvailability`` (an order without one never matches it)."""
        found = []
        for order in sorted(self.work_orders.values(), key=lambda w: w.num):
            if unit_id and order.unit_id != unit_id or statuses and order.status not in statuses:
                continue
            if start_range and (order.start is None or not start_range[0] <= order.start <= start_range[1]):
                continue
            found.append(order)
        return found


def _nights(spans: list[tuple[dt.date, dt.date]], start: dt.date, end: dt.date) -> set[dt.date]:
    """The nights ``start <= d < end`` of the half-open ``spans``."""
    nights: set[dt.date] = set()
    for first, stop in spans:
        d = max(first, start)
        while d < min(stop, end):
            nights.add(d)
            d += ONE_DAY
    return nights
