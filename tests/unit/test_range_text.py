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
    "2026-12-28+123456", "2026-12-28+1 123456+1", "20261228+1", "2026-12-28+1\n3+1", "2026-12-28+1 3+1x",
    "9999-12-31+1", "9999-12-30+1 1+1", "9999-01-01+1 99999+1", "9999-01-01+1 300+99999", "2026-12-28+١",
])
def test_what_is_not_the_form(text):
    assert not range_text.readable(text) and range_text.decode(text) is None
    assert not has_stored_ranges({"ranges": text}) and stored_ranges({"ranges": text}) is None


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


_TOKENS = st.one_of(st.integers(-2, 100_000).map(str), st.sampled_from(["", "x", "1e3", "٣", " "]))


@settings(max_examples=1000, deadline=None)
@given(first=st.sampled_from(["2026-12-28", "9999-12-01", "0001-01-01", "2026-02-29", "2028-02-29", "2026-1-01"]),
       rest=st.lists(st.tuples(_TOKENS, _TOKENS, st.sampled_from(["+", "++", " ", "-"])), max_size=5),
       nights=_TOKENS)
def test_the_cheap_check_says_what_reading_says(first, rest, nights):
    """has_stored_ranges (every unit, every tick) agrees with stored_ranges on any text,
    the overflow past 9999-12-31 included."""
    text = " ".join([f"{first}+{nights}", *(f"{a}{sep}{b}" for a, b, sep in rest)])
    assert has_stored_ranges({"ranges": text}) == (stored_ranges({"ranges": text}) is not None), text
