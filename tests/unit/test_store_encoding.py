"""State rows are encoded by orjson, and by the standard library's json where orjson
refuses (escapia_ical/store/__init__.py encode_body): either way, what is read back is
what was written, and is what json alone would have stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.store import encode_body

TEXT = st.one_of(st.text(), st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u2028", "ü", '"\\', "\x7f"]))
NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([2**63, -(2**63) - 1, 2**64, 0, -0.0, 1e16, 1e-7]))
VALUES = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
                      lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
                      max_leaves=20)


def _standard(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@settings(max_examples=1000, deadline=None)
@given(VALUES)
def test_what_is_read_back_is_what_json_would_have_stored(value):
    body = encode_body(value)
    assert json.loads(body) == json.loads(_standard(value)) == value or _has_negative_zero(value)
    assert json.dumps(json.loads(body), sort_keys=True) == json.dumps(json.loads(_standard(value)), sort_keys=True)


def _has_negative_zero(value) -> bool:  # -0.0 == 0 for ==: compared through json.dumps above
    if isinstance(value, float):
        return math.copysign(1, value) < 0 and value == 0
    if isinstance(value, dict):
        return any(map(_has_negative_zero, value.values()))
    return isinstance(value, list) and any(map(_has_negative_zero, value))


@pytest.mark.parametrize("value", [{"a": "\ud800"}, [2**64], {1: "x"}, {"k": -(2**63) - 1}, {"ü": "é\u2028"}])
def test_what_orjson_refuses_is_written_by_json(value):
    assert encode_body(value) == _standard(value)


def test_plain_state_is_the_same_bytes_as_before():
    """ASCII state (nearly all of it) is stored byte for byte as json wrote it: no row is
    rewritten by the upgrade."""
    value = {"b": [1, 2.5, None, True], "a": {"z": "x", "y": "2026-12-01T00:00:00+00:00"}, "c": -3}
    assert encode_body(value) == _standard(value)


@dataclasses.dataclass
class _Record:
    x: int


@pytest.mark.parametrize("value", [{"day": dt.date(2026, 12, 1)}, {"at": dt.datetime(2026, 12, 1)}, [_Record(1)],
                                   {"s": {1, 2}}])
def test_what_json_refuses_is_still_refused(value):
    with pytest.raises(TypeError):
        encode_body(value)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_a_row_is_ascii(value):
    """As the JSON files were, and as the PostgreSQL store's md5 comparison needs."""
    assert encode_body(value).isascii()


def test_a_float_that_is_not_finite_is_stored_as_null():
    """JSON has no such number, and state holds none; were one to come, it is null, as
    documented (json would have written NaN, which is not JSON)."""
    assert [json.loads(encode_body({"x": value})) for value in (math.nan, math.inf)] == [{"x": None}] * 2
