"""State files: corrupt ones are one warning and treated as absent; names read back from
them never address a file outside the account folder; nothing is written through a link."""

from __future__ import annotations

import json
import logging
import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.errors import PublishError
from escapia_ical.feeds.names import feed_filename, is_feed_filename
from escapia_ical.state import AccountState, read_json, write_json

GOOD = {"unit": "1", "digest": "d", "dtstamp": "2026-11-23T22:00:00+00:00", "events": 2,
        "ranges": "2026-12-01/2026-12-04", "day": "2026-11-23"}


@pytest.mark.parametrize("unit_id", ["1020-101", "a.", "a..b", "../x", "/etc/passwd", ".hidden", "ü 9",
                                     "x" * 300, "", "a\0b", "..", "CON"])
def test_every_name_we_produce_is_a_feed_filename(unit_id):
    assert is_feed_filename(feed_filename(unit_id))
    assert is_feed_filename(feed_filename(unit_id, "secret-0123456789abcdef", "acct"))


@pytest.mark.parametrize("name", ["../victim.ics", "/etc/passwd", "/tmp/x.ics", "a/b.ics", ".hidden.ics",
                                  "..", ".", "x.txt", "x.ics\0", "x\0.ics", "", ".ics", "x.ics/",
                                  "ünit.ics", "x\n.ics", 5, None])
def test_what_is_not_a_feed_filename(name):
    assert not is_feed_filename(name)


def test_feed_stamps_drop_bad_names_and_shapes_with_one_warning(tmp_path, caplog):
    state = AccountState(tmp_path, "acct")
    state.folder.mkdir(parents=True)
    stored = {"1.ics": GOOD, "a..ics": GOOD, "x~0123456789abcdef.ics": {"unit": "x/y"},
              "../victim.ics": GOOD, "/etc/passwd": GOOD, ".hidden.ics": GOOD,
              "2.ics": [], "3.ics": {**GOOD, "unit": ["1"]}, "4.ics": {**GOOD, "events": "2"},
              "5.ics": {**GOOD, "events": True}, "6.ics": {**GOOD, "ranges": 5}}
    (state.folder / "feeds.json").write_text(json.dumps(stored))
    with caplog.at_level(logging.WARNING):
        stamps = state.feed_stamps()
    assert stamps == {"1.ics": GOOD, "a..ics": GOOD, "x~0123456789abcdef.ics": {"unit": "x/y"}}
    [warning] = caplog.records
    message = warning.getMessage()
    assert str(state.folder / "feeds.json") in message and "'../victim.ics': not a feed file name" in message
    assert "and 5 more" in message


@pytest.mark.parametrize("content", [b"[]", b'"x"', b"5", b"null", b"\xff\xfe", b'{"1.ics": {"un',
                                     b"[" * 100_000])
def test_unusable_feeds_json_is_empty_with_one_warning(tmp_path, caplog, content):
    state = AccountState(tmp_path, "acct")
    state.folder.mkdir(parents=True)
    (state.folder / "feeds.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert state.feed_stamps() == {}
    assert len(caplog.records) == (content != b"null")
    assert all(str(state.folder / "feeds.json") in r.getMessage() for r in caplog.records)


def test_read_json_of_deep_nesting_is_a_warning(tmp_path, caplog):
    (tmp_path / "x.json").write_text("[" * 100_000)
    with caplog.at_level(logging.WARNING):
        assert read_json(tmp_path / "x.json") is None
    assert "unreadable (RecursionError" in caplog.text


def test_write_json_modes_and_a_linked_state_dir(tmp_path):
    real = tmp_path / "real-state"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)  # the operator's state_dir may be a link
    state = AccountState(tmp_path / "state", "acct")
    state.save_feed_stamps({"1.ics": GOOD})
    assert json.loads((real / "accounts" / "acct" / "feeds.json").read_text()) == {"1.ics": GOOD}
    assert stat.S_IMODE((real / "accounts" / "acct" / "feeds.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((real / "accounts").stat().st_mode) == 0o700
    assert os.listdir(real / "accounts" / "acct") == ["feeds.json"]


@pytest.mark.parametrize("linked", ["accounts", "accounts/acct"])
def test_write_json_refuses_a_linked_folder_below_state_dir(tmp_path, linked):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "feeds.json").write_text("precious")
    state_dir = tmp_path / "state"
    (state_dir / linked).parent.mkdir(parents=True)
    (state_dir / linked).symlink_to(victim if linked.endswith("acct") else tmp_path)
    if linked == "accounts":
        (tmp_path / "acct").symlink_to(victim)  # state/accounts/acct -> tmp/acct -> victim
    refusal = f"{state_dir / linked} is a symbolic link; refusing to write through it"
    with pytest.raises(PublishError, match=f"^{re.escape(refusal)}$"):
        AccountState(state_dir, "acct").save_feed_stamps({"1.ics": GOOD})
    assert (victim / "feeds.json").read_text() == "precious"
    assert os.listdir(victim) == ["feeds.json"]


def test_write_json_to_status_json_in_a_linked_state_dir(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    write_json(tmp_path / "state" / "status.json", {"version": 1})
    assert json.loads((real / "status.json").read_text()) == {"version": 1}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "pop"]), st.sampled_from(["a.ics", "b.ics", "c.ics"]),
                          st.sampled_from(["u1", "u2", None])), max_size=30))
def test_feed_stamps_index_names_by_unit_exactly_as_a_scan_would(operations):
    from escapia_ical.state import FeedStamps, names_of

    stamps = FeedStamps({"a.ics": {"unit": "u1"}})
    for op, name, unit in operations:
        if op == "set":
            stamps[name] = {"unit": unit} if unit else {"digest": "x"}
        elif op == "del" and name in stamps:
            del stamps[name]
        else:
            stamps.pop(name, None)
        for each in ("u1", "u2"):
            assert names_of(stamps, each) == names_of(dict(stamps), each)
