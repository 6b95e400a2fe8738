"""Feed profiles and feeds.base_url in the configuration (config/profiles.py)."""

from __future__ import annotations

import datetime as dt
import logging
import textwrap

import pytest

from escapia_ical.config import load_config
from escapia_ical.config.profiles import Profile
from escapia_ical.errors import ConfigError
from escapia_ical.sync.notices import say_once

ACCOUNTS = """\
accounts:
  - name: main
    api: hsapi
    pmcid: "1"
    client_id: id
    client_secret: ${SECRET}
    profiles:
      owner: false
      cleaner: {include: [reservation], buffer_after_days: 2}
  - name: soap
    api: escapianet
    username: u
    password: ${SECRET}
"""


def load(tmp_path, feeds: str, accounts: str = ACCOUNTS):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: out\nstate_dir: state\nfeeds:\n{textwrap.indent(feeds, '  ')}{accounts}")
    path.chmod(0o600)
    return load_config(path, {"SECRET": "s3cret-value"})


def test_global_profiles_are_overridden_by_name_per_account_and_switched_off_with_false(tmp_path):
    config = load(tmp_path, """\
base_url: https://cal.example.com/feeds/
profiles:
  cleaner: {include: [reservation]}
  owner: {include: [owner, other], summary: {owner: Owner stay}, dtend: last_night, future_days: 30}
""")
    main, soap = config.accounts
    assert [p.name for p in main.profiles] == ["cleaner"] and main.profiles[0].buffer_after_days == 2
    assert main.kinds_wanted is True
    assert [p.name for p in soap.profiles] == ["cleaner", "owner"]
    owner = soap.profiles[1]
    assert owner == Profile("owner", ("owner", "other"), summary=(("owner", "Owner stay"),), future_days=30,
                            dtend="last_night", line=owner.line) and owner.line == 7
    assert owner.summary_for("owner", "Reserved") == "Owner stay" and owner.summary_for("other", "Reserved") == "Reserved"
    assert config.feeds.uid_domain == "cal.example.com" and config.feeds.base_url == "https://cal.example.com/feeds"
    assert not config.feeds.uid_domain_fallback
    # EscapiaNET says no kind: a profile filtering by kind is warned about, by line.
    assert [w.split(": ", 1)[1] for w in config.warnings] == [
        "account soap: profile cleaner includes reservation: EscapiaNET calendars say no kind, so every night of "
        "this account is 'other' and its feeds stay empty",
        "account soap: profile owner includes owner, other: EscapiaNET calendars say no kind, so every night of "
        "this account is 'other'"]


def test_profiles_that_need_no_kinds_cost_no_index():
    assert not Profile("p", buffer_after_days=1, summary="Booked").needs_kinds
    assert Profile("p", summary=(("owner", "x"),)).needs_kinds and Profile("p", include=("owner",)).needs_kinds


@pytest.mark.parametrize(("feeds", "message"), [
    ("profiles:\n  Bad_Name: {}\n", "feeds.profiles.Bad_Name: profile names must match [a-z0-9][a-z0-9-]*"),
    ("profiles:\n  x: {include: [guests]}\n", "feeds.profiles.x.include[0]: must be one of: reservation, owner"),
    ("profiles:\n  x: {include: []}\n", "feeds.profiles.x.include: must not be an empty list"),
    ("profiles:\n  x: {buffer_after_days: 31}\n", "feeds.profiles.x.buffer_after_days: must be at most 30"),
    ("profiles:\n  x: {dtend: inclusive}\n", "feeds.profiles.x.dtend: must be one of: checkout, last_night"),
    ("profiles:\n  x: {summary: {guest: Hi}}\n", "feeds.profiles.x.summary.guest: unknown key"),
    ("profiles:\n  x: {summary: ' '}\n", "feeds.profiles.x.summary: must not be empty"),
    ("profiles:\n  x: {future_days: 800}\n", "feeds.profiles.x.future_days: 800 is beyond feeds.future_days (730)"),
    ("past_days: 3\nprofiles:\n  x: {past_days: 5}\n", "feeds.profiles.x.past_days: 5 is beyond feeds.past_days (3)"),
    ("profiles:\n  x: {colour: red}\n", "feeds.profiles.x.colour: unknown key"),
    ("base_url: ftp://x\n", "feeds.base_url: must be an http(s) URL without query"),
])
def test_profile_mistakes_are_one_line_each_with_file_and_line(tmp_path, feeds, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, feeds)
    lines = str(caught.value).splitlines()
    assert any(message in line and line.startswith(f"{tmp_path / 'c.yaml'}:") for line in lines), lines


def test_an_account_profile_must_be_a_mapping_or_false(tmp_path):
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.profiles\.owner: must be a profile mapping, or false"):
        load(tmp_path, "summary: Booked\n", ACCOUNTS.replace("owner: false", "owner: true"))


def test_without_base_url_uid_domain_falls_back_and_that_is_said_once(tmp_path, caplog):
    config = load(tmp_path, "summary: Booked\n")
    assert config.feeds.uid_domain == "escapia-ical" and config.feeds.uid_domain_fallback
    assert not load(tmp_path, "uid_domain: cal.example.org\n").feeds.uid_domain_fallback
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    with caplog.at_level(logging.WARNING):
        assert say_once(tmp_path / "state", "uid_domain", "UIDs end in @escapia-ical", now)
        assert not say_once(tmp_path / "state", "uid_domain", "UIDs end in @escapia-ical", now)
    assert [r.getMessage() for r in caplog.records] == ["UIDs end in @escapia-ical (said once)"]


@pytest.mark.parametrize("summary", [r'"Owner \x1b[31m stay"', r'"Stay \uD800"', r'"two\nlines"'])
@pytest.mark.parametrize("where", ["profiles:\n  c: {summary: %s}\n", "summary: %s\n"])
def test_a_summary_no_text_value_can_carry_is_refused(tmp_path, summary, where):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, where % summary)
    key = "feeds.profiles.c.summary" if "profiles" in where else "feeds.summary"
    assert f"{key}: must not contain control characters" in str(caught.value)


def test_odd_numbers_and_ports_are_caught_without_a_second_wrong_message(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "future_days: true\nprofiles:\n  x: {future_days: 31}\n")
    assert "beyond" not in str(caught.value) and "feeds.future_days: must be an integer" in str(caught.value)
    with pytest.raises(ConfigError, match="feeds.base_url: has no usable port"):
        load(tmp_path, "base_url: https://host:99999/feeds\n")
    profile = load(tmp_path, "profiles:\n  x: {buffer_after_days: 1.0, future_days: 30.0}\n").feeds.profiles[0]
    assert (profile.buffer_after_days, profile.future_days) == (1, 30)
    assert type(profile.buffer_after_days) is int and type(profile.future_days) is int
