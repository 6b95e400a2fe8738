"""The quiet-tick state file of an EscapiaNET account (sync/quiet.py): written, read back,
and refused whole (a full tick) when any part has the wrong shape."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from escapia_ical.model import Unit
from escapia_ical.sync.quiet import EMPTY, checked, to_json

NOW = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
STATE = {"mark": NOW, "reconciled_at": NOW - dt.timedelta(hours=1), "units": [Unit("1911-1", "Sea", "1911-1")],
         "listed_at": NOW, "truncated": False, "stamps": {"1911-1": "2026-05-01T07:59:00Z"}, "pending": ["1911-2"]}


def test_round_trip():
    assert checked(to_json(STATE), "x.json") == STATE
    assert checked(None, "x.json") == EMPTY  # no file yet: a full tick


@pytest.mark.parametrize("damage", [
    {"mark": "yesterday"}, {"mark": "2026-05-01T08:00:00"},  # not a time; a time without offset
    {"stamps": ["1911-1"]}, {"stamps": {"1911-1": 5}}, {"units": [{"id": 1, "name": "x"}]},
    {"pending": "1911-2"}, {"truncated": "no"}, {"reconciled_at": None},
])
def test_a_damaged_part_means_a_full_tick(damage, caplog):
    with caplog.at_level(logging.WARNING):
        assert checked({**to_json(STATE), **damage}, "x.json") == EMPTY
    assert "state state.db (x) is not as expected" in caplog.text


def test_not_a_mapping(caplog):
    with caplog.at_level(logging.WARNING):
        assert checked([1, 2], "x.json") == EMPTY
    assert "not as expected" in caplog.text
