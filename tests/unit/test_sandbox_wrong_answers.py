"""Consistent wrongness (escapia_ical/sandbox/wrong_answers.py) over real HTTP: answers that
parse, name the asked unit, and are wrong the same way on every run."""

from __future__ import annotations

import datetime as dt

import pytest
from defusedxml import ElementTree as SafeET
from test_sandbox import TODAY, call, get_token, nonavail, ranges_of
from test_sandbox_escapianet import CONTENT, batch, calendar, e
from test_sandbox_escapianet import call as soap

from escapia_ical.sandbox import Sandbox

DAY = dt.timedelta(days=1)
FIRST, LAST = "12/30/2026", "01/10/2027"  # 12 nights from TODAY
DAYS = {"1020-101": "OOUUOUUUUIAA", "1020-102": "UUIAAOUUUUOU", "1020-105": "A" * 12}  # the truth there
HSAPI_END = TODAY + 20 * DAY
BATCH_LAST = "2029-01-31"  # TODAY + 763 days (the calendar cap; 2028 is a leap year)
STAYS = {"1020-101": [(0, 1), (1, 4), (4, 9), (12, 13), (14, 15), (15, 16)],  # seeded, TODAY .. +20
         "1020-102": [(-4, 2), (5, 12), (10, 13)]}
WRONGNESS = ["same_answer", "shift", "flaky", "short_string", "short_coverage", "duplicate_calendar"]


@pytest.fixture
def sb():
    with Sandbox(today=TODAY) as sandbox:
        yield sandbox


@pytest.fixture
def token(sb, http):
    return get_token(sb, http)["authorizationHeaderValue"]


def days(*offsets: tuple[int, int], shift: int = 0) -> list[tuple[dt.date, dt.date]]:
    return [(TODAY + (a + shift) * DAY, TODAY + (d + shift) * DAY) for a, d in offsets]


def hsapi_ranges(sb, http, token, unit, start=TODAY, end=HSAPI_END):
    r = nonavail(sb, http, unit, start, end, token=token)
    assert r.status_code == 200, r.text
    return ranges_of(r.json())


def calendars(r) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """``(UnitCode, UnitName, [(StartDate, EndDate, DailyAvailability)])`` per calendar, in order."""
    assert r.status_code == 200, r.text
    root = SafeET.fromstring(r.content)
    assert root.find(f".//{e('Errors')}") is None
    return [(c.get("UnitCode"), c.get("UnitName"),
             [(s.get("StartDate"), s.get("EndDate"), s.findtext(e("DailyAvailability")))
              for s in c.findall(e("UnitCalendarAvailSegment"))])
            for c in root.iter() if c.tag in (e("UnitCalendarAvail"), e("UnitCalendarAvailSegments"))]


def unit_cal(sb, http, unit, first=FIRST, last=LAST):
    return calendars(soap(sb, http, "UnitCalendarAvail", calendar(unit, first, last)))


def batch_cals(sb, http):
    return calendars(soap(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT))


def whole(unit, text, first="2026-12-30", last="2027-01-10"):
    names = {"1020-101": "Ocean View Cottage", "1020-102": "Mountain Retreat", "1020-104": "Cliff, Sea; View \\ Loft",
             "1020-105": "Empty Studio"}
    return [(unit, names[unit], [(first, last, text)])]


def truthful(sb, http, token) -> list:
    """What the non-calendar operations say (they must never be touched)."""
    spec = {"specification": {"unitNativePMSIDs": ["1020-102", "1020-101"]}, "pageSize": 100}
    answers = [call(sb, http, "SearchReservationSummaries", token=token, body=spec),
               call(sb, http, "GetReservationById", token=token, params={"id": "300001"}),
               call(sb, http, "GetReservationChanges", token=token, params={"startVersion": 0}),
               call(sb, http, "SearchUnitSummaries", token=token, body={"pageSize": 100})]
    assert all(r.status_code == 200 for r in answers)
    units = soap(sb, http, "UnitSearch")
    assert units.status_code == 200
    return [r.json() for r in answers] + [SafeET.tostring(SafeET.fromstring(units.content).find(f".//{e('Units')}"))]


def test_inject_validates(sb, http):
    for name, kw in [("shift", {"days": "30"}), ("shift", {"days": 4000}), ("flaky", {"every": 0}),
                     ("flaky", {"every": True}), ("short_string", {"keep": 0}), ("short_coverage", {"days": 0}),
                     ("duplicate_calendar", {"conflict": "yes"}), ("same_answer", {"source": "no-such-unit"}),
                     ("same_answer", {"source": 101}), ("short_string", {"keep": 0.5}), ("flaky", {"days": 3})]:
        with pytest.raises(ValueError):
            sb.inject(name, **kw)
    r = http.post(f"{sb.base_url}/_sandbox/faults", json={"fault": "same_answer", "source": "nope"})
    assert r.status_code == 400 and "not a unit" in r.json()["error"]
    assert sb.faults.active() == []
    for name in WRONGNESS:
        assert http.post(f"{sb.base_url}/_sandbox/faults", json={"fault": name}).status_code == 200
    assert [f["params"] for f in http.get(f"{sb.base_url}/_sandbox/faults").json()["faults"]] == [
        {"source": "1020-101"}, {"days": 30}, {"every": 3}, {"keep": 3}, {"days": 3}, {"conflict": True}]


@pytest.mark.parametrize("op", [None, "SearchReservationSummaries", "GetReservationById", "GetReservationChanges",
                                "SearchUnitSummaries", "UnitSearch"])
def test_non_calendar_answers_keep_telling_the_truth(sb, http, token, op):
    before = truthful(sb, http, token)
    for name in WRONGNESS:
        sb.inject(name, op=op, **({"every": 1} if name == "flaky" else {}))
    assert truthful(sb, http, token) == before
    assert all(r["faults"] == [] for r in sb.requests if r["op"] not in ("GetUnitNonAvailability",))
    assert len(sb.faults.active()) == len(WRONGNESS)  # none fired, none used up


def test_same_answer_hsapi(sb, http, token):
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])
    assert hsapi_ranges(sb, http, token, "1020-102") == days(*STAYS["1020-102"])
    sb.inject("same_answer")
    for unit in ("1020-102", "1020-105", "ünit 9"):  # every unit answers 1020-101's calendar
        assert hsapi_ranges(sb, http, token, unit) == days(*STAYS["1020-101"]), unit
    assert sb.requests[-1]["faults"] == ["same_answer"]
    r = nonavail(sb, http, "1020-102", TODAY, HSAPI_END, token=token).json()
    assert r[0] == {"$id": "1", "dateRange": {"$id": "2", "startDate": "2026-12-30", "endDate": "2026-12-31"}}
    later = hsapi_ranges(sb, http, token, "1020-102", TODAY + 50 * DAY, TODAY + 100 * DAY)  # the asked range
    assert later == days((60, 67), (95, 102))
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])
    assert sb.requests[-1]["faults"] == []  # source's own answer: nothing to change, not counted
    sb.clear_faults()
    assert http.post(f"{sb.base_url}/_sandbox/faults",
                     json={"fault": "same_answer", "source": "1020-102", "unit": "1020-105"}).status_code == 200
    assert hsapi_ranges(sb, http, token, "1020-105") == days(*STAYS["1020-102"])
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])  # unit= limits it


def test_same_answer_escapianet(sb, http):
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"])
    truth = batch_cals(sb, http)
    source_segments = next(segs for code, _, segs in truth if code == "1020-101")
    sb.inject("same_answer")
    # the asked unit's code and name, the asked range, 1020-101's nights
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-101"])
    assert unit_cal(sb, http, "1020-105") == whole("1020-105", DAYS["1020-101"])
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", DAYS["1020-101"])
    assert batch_cals(sb, http) == [(code, name, source_segments) for code, name, _ in truth]
    sb.clear_faults()
    sb.inject("same_answer", source="1020-105", unit="1020-102")  # one unit inside the batch
    changed = batch_cals(sb, http)
    assert [c[:2] for c in changed] == [c[:2] for c in truth]
    for (code, _, segments), (_, _, true_segments) in zip(changed, truth, strict=True):
        if code == "1020-102":
            assert segments == [(true_segments[0][0], true_segments[0][1], "A" * 764)]
            assert set(true_segments[0][2]) != {"A"}
        else:
            assert segments == true_segments, code
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", DAYS["1020-101"])


def test_shift(sb, http, token):
    truth = batch_cals(sb, http)
    sb.inject("shift")
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"], shift=30)
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"], "2027-01-29", "2027-02-09")
    moved = batch_cals(sb, http)
    assert moved == [(code, name, [("2027-01-29", "2029-03-02", text)]) for code, name, [(_, _, text)] in truth]
    assert truth[0][2][0][:2] == ("2026-12-30", BATCH_LAST)
    sb.clear_faults()
    r = http.post(f"{sb.base_url}/_sandbox/faults", json={"fault": "shift", "days": -10, "unit": "1020-102"})
    assert r.status_code == 200
    assert hsapi_ranges(sb, http, token, "1020-102") == days(*STAYS["1020-102"], shift=-10)
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"], "2026-12-20", "2026-12-31")
    for (code, _, segments), (_, _, true_segments) in zip(batch_cals(sb, http), truth, strict=True):
        start, end, text = true_segments[0]
        expected = ("2026-12-20", "2029-01-21", text) if code == "1020-102" else (start, end, text)
        assert segments == [expected], code


def emptied(cals, truth) -> list[int]:
    """Positions of the calendars that differ from ``truth``, each checked to be all free."""
    assert [c[:2] for c in cals] == [t[:2] for t in truth]
    changed = [i for i, (c, t) in enumerate(zip(cals, truth, strict=True)) if c != t]
    for i in changed:
        assert cals[i][2] == [(s, e_, "A" * len(text)) for s, e_, text in truth[i][2]]
    return changed


def test_flaky_empties_every_nth_calendar_for_ever(sb, http, token):
    truth = batch_cals(sb, http)
    assert [code for code, _, [(_, _, text)] in truth if set(text) == {"A"}] == ["1020-105"]  # truly free
    sb.inject("flaky")
    got = [hsapi_ranges(sb, http, token, "1020-101") for _ in range(30)]
    assert [n for n, ranges in enumerate(got, 1) if ranges == []] == list(range(3, 31, 3))
    assert all(ranges == days(*STAYS["1020-101"]) for n, ranges in enumerate(got, 1) if n % 3)
    assert [f["fault"] for f in sb.faults.active()] == ["flaky"]  # still there after 10 firings
    # one counter for both APIs: answers 31, 32 (HSAPI, EscapiaNET) then 33 is empty
    assert hsapi_ranges(sb, http, token, "1020-102") == days(*STAYS["1020-102"])
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"])
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", "A" * 12)  # same length, all free
    # a batch counts each unit's calendar: 34..41, so its 3rd (36) and 6th (39) are empty; then 42..49
    assert emptied(batch_cals(sb, http), truth) == [2, 5]
    assert emptied(batch_cals(sb, http), truth) == [0, 3, 6]
    assert [r["faults"] for r in sb.requests[-2:]] == [["flaky"], ["flaky"]]
    sb.clear_faults()
    sb.inject("flaky", every=3)  # a new fault counts from 1 again: the same pattern, run after run
    assert [hsapi_ranges(sb, http, token, "1020-101") == [] for _ in range(6)] == [False, False, True] * 2


def test_flaky_unit_and_times(sb, http, token):
    truth = batch_cals(sb, http)
    sb.inject("flaky", every=2, unit="1020-102")
    assert [hsapi_ranges(sb, http, token, u) == [] for u in ["1020-101", "1020-102"] * 3] == \
        [False, False, False, True, False, False]  # 1020-101 does not count
    assert emptied(batch_cals(sb, http), truth) == [1]  # 1020-102's 4th calendar, inside a batch
    assert emptied(batch_cals(sb, http), truth) == []  # its 5th: the 7 other units did not count
    assert emptied(batch_cals(sb, http), truth) == [1]  # its 6th
    assert [r["faults"] for r in sb.requests[-3:]] == [["flaky"], [], ["flaky"]]
    sb.clear_faults()
    sb.inject("flaky", every=1, times=2)
    assert [hsapi_ranges(sb, http, token, "1020-101") == [] for _ in range(4)] == [True, True, False, False]
    assert sb.faults.active() == []


def test_short_string(sb, http, token):
    truth = batch_cals(sb, http)
    sb.inject("short_string")
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])  # EscapiaNET only
    assert sb.requests[-1]["faults"] == []
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", "OOU")  # dates still claim 12 nights
    assert batch_cals(sb, http) == [(code, name, [(s, e_, text[:3])]) for code, name, [(s, e_, text)] in truth]
    sb.clear_faults()
    sb.inject("short_string", keep=5, unit="1020-102")
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", DAYS["1020-101"])
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", "UUIAA")
    changed = batch_cals(sb, http)
    assert [c for c, t in zip(changed, truth, strict=True) if c != t] == \
        [("1020-102", "Mountain Retreat", [("2026-12-30", BATCH_LAST, truth[1][2][0][2][:5])])]


def test_short_coverage(sb, http, token):
    truth = batch_cals(sb, http)
    sb.inject("short_coverage")
    assert hsapi_ranges(sb, http, token, "1020-101") == days(*STAYS["1020-101"])  # EscapiaNET only
    first, last = TODAY - 7 * DAY, TODAY + 729 * DAY  # a 737-day request ...
    answer = unit_cal(sb, http, "1020-104", first.strftime("%m/%d/%Y"), last.strftime("%m/%d/%Y"))
    assert answer == whole("1020-104", "UUU", "2026-12-23", "2026-12-25")  # ... answered by 3 days
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", "UUI", "2026-12-30", "2027-01-01")
    assert batch_cals(sb, http) == [(code, name, [(s, "2027-01-01", text[:3])])
                                    for code, name, [(s, _, text)] in truth]
    sb.clear_faults()
    sb.inject("short_coverage", days=7, unit="1020-102")
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", DAYS["1020-101"])
    changed = batch_cals(sb, http)
    assert [c for c, t in zip(changed, truth, strict=True) if c != t] == \
        [("1020-102", "Mountain Retreat", [("2026-12-30", "2027-01-05", truth[1][2][0][2][:7])])]


def test_duplicate_calendar(sb, http, token):
    truth = batch_cals(sb, http)
    sb.inject("duplicate_calendar", unit="1020-102")
    assert hsapi_ranges(sb, http, token, "1020-102") == days(*STAYS["1020-102"])  # EscapiaNET only
    assert unit_cal(sb, http, "1020-101") == whole("1020-101", DAYS["1020-101"])
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"]) + whole("1020-102", "A" * 12)
    conflicting = ("1020-102", "Mountain Retreat", [("2026-12-30", BATCH_LAST, "A" * 764)])
    assert batch_cals(sb, http) == truth[:2] + [conflicting] + truth[2:]
    sb.clear_faults()
    assert http.post(f"{sb.base_url}/_sandbox/faults",
                     json={"fault": "duplicate_calendar", "conflict": False}).status_code == 200
    assert batch_cals(sb, http) == [c for c in truth for _ in range(2)]
    assert unit_cal(sb, http, "1020-102") == whole("1020-102", DAYS["1020-102"]) * 2
