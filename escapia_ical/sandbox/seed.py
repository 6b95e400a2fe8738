"""Deterministic seed data (relative to ``today``) covering the calendar edge cases.

Hand-made units (the feed window assumed by the tests is ``today-7 .. today+730``):

=============  ======  =====================================  ====================================
nativePMSID    code    name                                   notable
=============  ======  =====================================  ====================================
1020-101       101     Ocean View Cottage                     1-night stay arriving today;
                                                              back-to-back chain; 1-night stays
1020-102       102     Mountain Retreat                       Owner + Maintenance holds, the
                                                              Maintenance hold overlaps a stay;
                                                              work orders (one blocking)
1020-103       103     Harbor Loft 🌊\\nPier 9                 stay across New Year (Dec 28 ->
                                                              Jan 3); stay covering Feb 29;
                                                              emoji and a literal backslash-n
                                                              in the name (not a line break)
1020-104       104     Cliff, Sea; View \\ Loft               stays crossing both window edges,
                                                              one before, one beyond the window;
                                                              comma, semicolon, backslash in the
                                                              name (TEXT escaping)
1020-105       105     Empty Studio                           no reservations at all
1020/7B        7B      Café «Lanai» & Spa — Suite #4          "/" in id, unicode/punctuation
ünit 9         Ü9      Ōhiʻa Hale                             unicode + space in id
1020-108       108     Pele's "Hideaway" \\ Loft; A/C         quote and backslash in name
=============  ======  =====================================  ====================================

Extra units ``1020-2001``, ``1020-2002``, ... get random stays (gaps, some back-to-back, a
few holds) over ``today-10 .. today+730`` from ``random.Random(seed)``.
"""

from __future__ import annotations

import datetime as dt

from escapia_ical.sandbox.data import SandboxData

ADJECTIVES = ["Sunny", "Hidden", "Coral", "Whispering", "Lazy", "Golden", "Misty", "Blue"]
NOUNS = ["Cove", "Bungalow", "Hideaway", "Chalet", "Cabin", "Casita", "Lodge", "Retreat"]


def next_new_year_stay(today: dt.date) -> tuple[dt.date, dt.date]:
    """Dec 28 of today's year -> Jan 3 of the next (always still to come or in progress)."""
    year = today.year
    return dt.date(year, 12, 28), dt.date(year + 1, 1, 3)


def next_leap_day_stay(today: dt.date) -> tuple[dt.date, dt.date]:
    """Feb 27 -> Mar 2 around the next Feb 29 still to come (nights Feb 27, 28, 29, Mar 1)."""
    year = today.year
    while True:
        try:
            leap = dt.date(year, 2, 29)
        except ValueError:
            year += 1
            continue
        if leap + dt.timedelta(days=2) > today:
            return leap - dt.timedelta(days=2), leap + dt.timedelta(days=2)
        year += 1


def seed(data: SandboxData, extra_units: int = 0) -> None:
    today = data.today

    def day(offset: int) -> dt.date:
        return today + dt.timedelta(days=offset)

    def stays(unit_id: str, spans: list[tuple[int, int]], hold: str | None = None) -> None:
        for a, d in spans:
            data.add_reservation(unit_id, day(a), day(d), hold)

    data.add_unit("1020-101", "101", "Ocean View Cottage", 101, bedrooms=2, sleeps=4, rate=289)
    stays("1020-101", [(-20, -14), (-14, -8), (-3, 0), (0, 1), (1, 4), (4, 9), (12, 13),
                       (14, 15), (15, 16), (21, 28), (28, 35), (40, 41), (60, 67), (95, 102),
                       (180, 187), (365, 372)])

    data.add_unit("1020-102", "102", "Mountain Retreat", 102, bedrooms=4, bathrooms=3, sleeps=10,
                  rate=540)
    stays("1020-102", [(-4, 2), (5, 12), (37, 40), (150, 157), (400, 410)])
    stays("1020-102", [(10, 13), (200, 201)], "Maintenance")  # (10, 13) overlaps the stay (5, 12)
    stays("1020-102", [(30, 37), (100, 114)], "Owner")  # (30, 37) is back-to-back with (37, 40)
    # Work orders: one removing the unit (nights 250..253), one completed (blocks nothing any
    # more), one that never removed it.
    data.add_work_order("1020-102", day(250), day(253), status="Scheduled")
    data.add_work_order("1020-102", day(260), day(262), status="Completed")
    data.add_work_order("1020-102", None, None, status="Pending", removes=False)

    data.add_unit("1020-103", "103", "Harbor Loft 🌊\\nPier 9", 103, bedrooms=1, sleeps=2, rate=175)
    special = [next_new_year_stay(today), next_leap_day_stay(today)]
    for start, end in special:
        data.add_reservation("1020-103", start, end)
    for a, d in [(-2, 3), (6, 10), (45, 52), (120, 127), (300, 306)]:
        if not any(day(a) < e and day(d) > s for s, e in special):
            data.add_reservation("1020-103", day(a), day(d))

    data.add_unit("1020-104", "104", "Cliff, Sea; View \\ Loft", 104, bedrooms=5, bathrooms=4,
                  sleeps=12, rate=890)
    stays("1020-104", [(-36, -30), (-12, -3), (10, 17), (725, 740), (800, 805)])

    data.add_unit("1020-105", "105", "Empty Studio", 105, bedrooms=0, sleeps=2, rate=99)

    data.add_unit("1020/7B", "7B", "Café «Lanai» & Spa — Suite #4", 106, bedrooms=1, sleeps=3,
                  rate=315, headline="Lanai & spa, steps to the beach — «Suite #4»")
    stays("1020/7B", [(2, 9), (9, 10), (30, 44), (130, 133)])
    stays("1020/7B", [(50, 57)], "Owner")

    data.add_unit("ünit 9", "Ü9", "Ōhiʻa Hale", 107, bedrooms=3, bathrooms=2, sleeps=6, rate=410)
    stays("ünit 9", [(-1, 3), (7, 14), (14, 21), (90, 120), (500, 503)])

    data.add_unit("1020-108", "108", 'Pele\'s "Hideaway" \\ Loft; A/C', 108, rate=199)
    stays("1020-108", [(1, 2), (3, 5), (70, 77)])
    stays("1020-108", [(5, 6)], "Maintenance")

    add_generated_units(data, extra_units)
    data.end_seeding()


def add_generated_units(data: SandboxData, count: int) -> None:
    """``count`` units ``1020-2001`` ... with random stays (from the store's seeded RNG)."""
    rng = data.rng
    for i in range(count):
        num = 2001 + i
        unit_id = f"1020-{num}"
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {num}"
        bedrooms = rng.randint(0, 6)
        data.add_unit(unit_id, str(num), name, num, bedrooms=bedrooms,
                      bathrooms=max(1, bedrooms - 1), sleeps=2 + 2 * bedrooms,
                      rate=float(rng.randrange(120, 900, 5)))
        d = data.today - dt.timedelta(days=rng.randint(0, 10))
        horizon = data.today + dt.timedelta(days=730)
        while d < horizon:
            d += dt.timedelta(days=rng.choice([0, 0, 0, 1, 2, 3, 4, 7, 10, 14, 21, 30]))
            nights = rng.choice([1, 2, 3, 3, 4, 5, 7, 7, 7, 10, 14])
            hold = rng.choices([None, "Owner", "Maintenance"], weights=[90, 6, 4])[0]
            data.add_reservation(unit_id, d, d + dt.timedelta(days=nights), hold)
            d += dt.timedelta(days=nights)
