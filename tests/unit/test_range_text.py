"""The compact text of a feed's whole ranges in state (feeds/range_text.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.feeds import range_text
from escapia_ical.model import BlockedRange
from escapia_ical.sync.stamps import has_stored_ranges, stored_ranges

D = dt.date.fromisoformat


@pytest.mark.parametrize(("pairs", "text"), [
    ([], ""),
    ([(D("2026-12-28"), D("2027-01-04"))], "2026-12-28+7"),
    # back to back, overlapping, the same first night, over a leap day and the year's end
    ([(D("2028-02-27"), D("2028-03-01")), (D("2028-03-01"), D("2028-03-02")), (D("2028-03-01"), D("2028-03-05")),
      (D("2028-03-03"), D("2029-01-02"))], "2028-02-27+3 3+1 3+4 5+305"),
    ([(D("9999-12-30"), D("9999-12-31"))], "9999-12-30+1"),
])
def test_the_form(pairs, text):
    assert range_text.encode(pairs) == text
    assert range_text.decode(text) == pairs and range_text.readable(text)


@pytest.mark.parametrize("text", [
    "2026-12-28", "2026-12-28+0", "2026-12-28+-1", "2026-02-30+1", "2026-12-28+1 ", " 2026-12-28+1",
    "2026-12-28+1  3+1", "2026-12-28+1 3", "2026-12-28+1 +1", "2026-12-28+1 3+0", "2026-12-28+1 -3+1",
    "2026-12-28+12345678", "2026-12-28+1 12345678+1", "20261228+1", "2026-12-28+1\n3+1", "2026-12-28+1 3+1x",
    "9999-12-31+1", "9999-12-30+1 1+1", "9999-01-01+1 99999+1", "9999-01-01+1 300+99999", "2026-12-28+١",
    "2026-12-28+2912082", "2026-12-28+1 2912081+1", "0001-01-01+3652059", "2026-12-28+1 0000000+01",
])
def test_what_is_not_the_form(text):
    assert not range_text.readable(text) and range_text.decode(text) is None
    assert not has_stored_ranges({"ranges": text}) and stored_ranges({"ranges": text}) is None


@pytest.mark.parametrize(("pairs", "text"), [
    # an owner's block to the last day there is: one range of 2,912,081 nights (7 digits)
    ([(D("2026-12-28"), D("9999-12-31"))], "2026-12-28+2912081"),
    ([(D("0001-01-01"), D("0001-01-02")), (D("9999-12-30"), D("9999-12-31"))], "0001-01-01+1 3652057+1"),
    ([(D("0001-01-01"), D("9999-12-31"))], "0001-01-01+3652058"),
])
def test_any_two_dates_are_one_range(pairs, text):
    assert range_text.encode(pairs) == text and range_text.decode(text) == pairs
    assert range_text.upgraded(" ".join(f"{s}/{e}" for s, e in pairs)) == text
    assert has_stored_ranges({"ranges": text}) and stored_ranges({"ranges": text}) == [BlockedRange(*p) for p in pairs]


def test_the_same_first_night_twice_is_an_offset_of_0_whatever_the_date_object():
    day = D("2026-01-01")  # (parsed dates are shared objects: a second range may start at this one)
    pairs = [(day, day + dt.timedelta(days=2)), (day, day + dt.timedelta(days=4))]
    assert range_text.encode(pairs) == "2026-01-01+2 0+4" and range_text.decode("2026-01-01+2 0+4") == pairs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.dates(), st.dates()).filter(lambda p: p[0] < p[1]), max_size=8))
def test_every_valid_pair_from_the_first_to_the_last_date_reads_back(pairs):
    pairs = sorted(pairs)
    text = range_text.encode(pairs)
    assert range_text.readable(text) and range_text.decode(text) == pairs
    assert range_text.upgraded(" ".join(f"{s}/{e}" for s, e in pairs)) == text


_DAYS = st.dates(min_value=D("2000-01-01"), max_value=D("2100-12-31"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_DAYS, st.integers(1, 4000)), max_size=60))
def test_what_is_encoded_is_read_back_and_the_older_form_upgrades_to_it(stays):
    pairs = sorted((start, start + dt.timedelta(days=nights)) for start, nights in stays)
    text = range_text.encode(pairs)
    assert range_text.readable(text) and range_text.decode(text) == pairs
    assert stored_ranges({"ranges": text}) == [BlockedRange(s, e) for s, e in pairs]
    older = " ".join(f"{s}/{e}" for s, e in reversed(pairs))
    assert range_text.upgraded(older) == text
    assert sorted((r.start, r.end) for r in stored_ranges({"ranges": older})) == pairs


_TOKENS = st.one_of(st.integers(-2, 100_000).map(str), st.integers(99_990, 12_000_000).map(str),
                    st.sampled_from(["", "x", "1e3", "٣", " ", "0000000", "01"]))


@settings(max_examples=1000, deadline=None)
@given(first=st.sampled_from(["2026-12-28", "9999-12-01", "0001-01-01", "2026-02-29", "2028-02-29", "2026-1-01",
                             "9000-01-01"]),
       rest=st.lists(st.tuples(_TOKENS, _TOKENS, st.sampled_from(["+", "++", " ", "-"])), max_size=5),
       nights=_TOKENS)
def test_the_cheap_check_says_what_reading_says(first, rest, nights):
    """has_stored_ranges (every unit, every tick) agrees with stored_ranges on any text,
    the overflow past 9999-12-31 included."""
    text = " ".join([f"{first}+{nights}", *(f"{a}{sep}{b}" for a, b, sep in rest)])
    assert has_stored_ranges({"ranges": text}) == (stored_ranges({"ranges": text}) is not None), text
