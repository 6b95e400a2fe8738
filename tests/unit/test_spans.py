"""Sets of nights as spans, checked against plain sets of dates (hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from escapia_ical.feeds import spans

D = dt.date
BASE = D(2027, 12, 25)  # year end and a leap day (2028-02-29) within reach
DAY = dt.timedelta(days=1)

SPAN = st.tuples(st.integers(0, 80), st.integers(0, 12)).map(
    lambda p: (BASE + p[0] * DAY, BASE + (p[0] + p[1]) * DAY))
SPANS = st.lists(SPAN, max_size=8)


def nights(group) -> set[D]:
    return {s + i * DAY for s, e in group for i in range((e - s).days)}


def well_formed(result) -> bool:
    return all(s < e for s, e in result) and all(a[1] < b[0] for a, b in zip(result, result[1:], strict=False))


@given(a=SPANS, b=SPANS)
def test_operations_match_sets_of_nights(a, b):
    for result, expected in ((spans.normalize(a), nights(a)),
                             (spans.subtract(a, b), nights(a) - nights(b)),
                             (spans.intersect(a, b), nights(a) & nights(b)),
                             (spans.union(a, b), nights(a) | nights(b)),
                             (spans.clip(a, BASE + 10 * DAY, BASE + 40 * DAY),
                              {n for n in nights(a) if BASE + 10 * DAY <= n < BASE + 40 * DAY})):
        assert nights(result) == expected and well_formed(result)
    assert spans.count(a) == len(nights(a))


@given(a=SPANS)
def test_encode_decode_round_trip(a):
    assert spans.decode(spans.encode(a)) == spans.normalize(a)


def test_decode_refuses_what_encode_never_writes():
    assert spans.decode(None) is None and spans.decode(["x"]) is None
    assert spans.decode("2026-01-01/nope") is None and spans.decode("2026-01-01") is None
    assert spans.decode("") == []


def test_describe_names_first_and_last_nights():
    group = [(D(2028, 2, 28), D(2028, 3, 1)), (D(2028, 12, 31), D(2029, 1, 1))]
    assert spans.describe(group) == "2028-02-28..2028-02-29, 2028-12-31"
    assert spans.describe(group * 1 + [(D(2029, 5, 1), D(2029, 5, 2)), (D(2029, 6, 1), D(2029, 6, 2))],
                          limit=2) == "2028-02-28..2028-02-29, 2028-12-31, +2 more"
