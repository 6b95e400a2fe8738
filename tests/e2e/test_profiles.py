"""Feed profiles against the real CLI and the sandbox: three profiles per unit from one fetch,
each compared night by night with the sandbox's truth filtered by kind and widened by its
buffers — a model written here, independently of feeds/profiles.py."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import icalendar
import pytest
from conftest import FUTURE_DAYS, PAST_DAYS, Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.feeds.names import feed_filename
from escapia_ical.state import describe, read_state, write_state

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)
PROFILES = """\
  profiles:
    channel:
      buffer_after_days: 1
      summary: Booked
    cleaner:
      include: [reservation]
      buffer_after_days: 1
      summary: Guest stay
      past_days: 0
      future_days: 90
    owner:
      include: [owner]
      dtend: last_night
      summary: {owner: Owner stay}
"""
WINDOWS = {"channel": (TODAY - PAST_DAYS * DAY, TODAY + FUTURE_DAYS * DAY),
           "cleaner": (TODAY, TODAY + 90 * DAY),
           "owner": (TODAY - PAST_DAYS * DAY, TODAY + FUTURE_DAYS * DAY)}
KINDS = {"channel": None, "cleaner": {"reservation"}, "owner": {"owner"}}
BUFFERS = {"channel": 1, "cleaner": 1, "owner": 0}


def configure(deployment: Deployment, mode: str, profiles: str = PROFILES) -> None:
    write_config(deployment.config, account_yaml(mode))
    text = deployment.config.read_text(encoding="utf-8")
    text = text.replace("feeds:\n", "feeds:\n" + profiles)
    deployment.config.write_text(text, encoding="utf-8")
    deployment.mode = mode


def expected(nights_by_kind: dict[str, set[dt.date]], profile: str) -> set[dt.date]:
    """The model: the nights of the included kinds, plus ``after`` nights after each run of
    them, clipped to the profile's window."""
    kinds = KINDS[profile]
    chosen = set().union(*(n for k, n in nights_by_kind.items() if kinds is None or k in kinds))
    widened = set(chosen)
    for night in chosen:
        if night + DAY not in chosen:
            widened |= {night + (i + 1) * DAY for i in range(BUFFERS[profile])}
    start, end = WINDOWS[profile]
    return {n for n in widened if start <= n < end}


def inclusive_nights(path) -> set[dt.date]:
    """Read a ``dtend: last_night`` feed the way such an importer does: DTEND is the last night."""
    nights: set[dt.date] = set()
    for event in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT"):
        start = event.decoded("dtstart")
        last = event.decoded("dtend") if "DTEND" in event else start
        assert last >= start
        nights |= {start + i * DAY for i in range((last - start).days + 1)}
    return nights


def summaries(path) -> set[str]:
    return {str(e["SUMMARY"]) for e in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")}


@pytest.mark.parametrize("mode", ["hsapi", "hsapi-full"])
def test_three_profiles_show_the_truth_by_kind_with_their_buffers(deployment, mode):
    configure(deployment, mode)
    sandbox = deployment.sandbox
    sandbox.add_work_order("1020-105", TODAY + 20 * DAY, TODAY + 23 * DAY)  # maintenance
    sandbox.block_contract("1020-105", TODAY + 40 * DAY, TODAY + 45 * DAY)  # other: nothing explains it
    sandbox.add_reservation("1020-105", TODAY + 5 * DAY, TODAY + 8 * DAY, "SoftBlock")  # hold
    sandbox.add_reservation("1020-105", TODAY + 8 * DAY, TODAY + 10 * DAY)  # a guest, back to back
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    units = sorted(sandbox.data.units)
    checked = {"owner": 0, "cleaner": 0}
    for unit in units:
        truth = sandbox.blocked_nights_by_kind(unit, *deployment.window)
        default = read_nights(deployment.feed(unit))
        assert default == deployment.truth(unit)
        for profile in ("channel", "cleaner"):
            path = deployment.output / "sandbox" / profile / feed_filename(unit)
            assert read_nights(path) == expected(truth, profile), (unit, profile)
            assert summaries(path) <= {"Booked" if profile == "channel" else "Guest stay"}
        owner = deployment.output / "sandbox" / "owner" / feed_filename(unit)
        assert inclusive_nights(owner) == expected(truth, "owner"), unit
        assert summaries(owner) <= {"Owner stay"}
        checked["owner"] += bool(truth.get("owner"))
        checked["cleaner"] += bool(expected(truth, "cleaner"))
    assert checked["owner"] and checked["cleaner"]  # the seed really has owner stays and guests soon
    kinds = sandbox.blocked_nights_by_kind("1020-105", *deployment.window)
    assert {k for k, n in kinds.items() if n} == {"maintenance", "other", "hold", "reservation"}
    assert read_nights(deployment.output / "sandbox" / "cleaner" / feed_filename("1020-105")) == {
        TODAY + 8 * DAY, TODAY + 9 * DAY, TODAY + 10 * DAY}  # the guest stay and its turnover day
    # The channel profile of every kind is the default feed plus its buffer nights.
    for unit in units:
        widened = expected({"all": deployment.truth(unit)}, "channel")
        assert read_nights(deployment.output / "sandbox" / "channel" / feed_filename(unit)) == widened


def test_a_steady_tick_with_three_profiles_costs_what_it_costs_without(deployment, tmp_path):
    sandbox = deployment.sandbox
    costs = {}
    for profiles in ("", PROFILES):
        configure(deployment, "hsapi", profiles)
        for _ in range(2):  # the first tick after a change of config settles (new profiles are written)
            result = deployment.run("sync")
            assert (result.returncode, result.stderr) == (0, ""), result.stderr
        sandbox.reset_request_log()
        result = deployment.run("sync")
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        costs[bool(profiles)] = Counter(r["op"] for r in sandbox.requests)
    assert costs[True] == costs[False] == {"GetReservationChanges": 1, "SearchWorkOrders": 1}


def test_profile_feeds_follow_a_change_in_the_same_tick(deployment):
    configure(deployment, "hsapi")
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    stay = sandbox.add_reservation("1020-105", TODAY + 10 * DAY, TODAY + 12 * DAY, "Owner")
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    owner = deployment.output / "sandbox" / "owner" / feed_filename("1020-105")
    cleaner = deployment.output / "sandbox" / "cleaner" / feed_filename("1020-105")
    assert {TODAY + 10 * DAY, TODAY + 11 * DAY} <= inclusive_nights(owner)
    assert TODAY + 10 * DAY not in read_nights(cleaner)
    sandbox.cancel_reservation(stay)
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert TODAY + 10 * DAY not in inclusive_nights(owner)


def test_feeds_lists_profile_urls_under_base_url(deployment):
    configure(deployment, "hsapi")
    assert deployment.run("sync").returncode == 0
    result = deployment.run("feeds", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    mine = [r for r in rows if r["unit"] == "1020-105"]
    assert {(r["profile"], r["url"]) for r in mine} == {
        (None, "https://calendars.example.com/feeds/sandbox/1020-105.ics"),
        *((p, f"https://calendars.example.com/feeds/sandbox/{p}/1020-105.ics")
          for p in ("channel", "cleaner", "owner"))}


@pytest.mark.parametrize("mode", ["hsapi", "escapianet-batch"])
def test_a_steady_tick_rewrites_no_profile_feed(deployment, mode):
    configure(deployment, mode)
    for _ in range(2):
        result = deployment.run("sync")
        assert result.returncode == 0, result.stderr
    files = sorted(deployment.output.glob("sandbox/*/*.ics"))
    assert len(files) == 3 * len(deployment.sandbox.data.units)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before


def test_escapianet_nights_are_all_other_and_a_kind_filter_is_warned_about(deployment):
    configure(deployment, "escapianet-batch")
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    assert "profile cleaner includes reservation: EscapiaNET calendars say no kind" in result.stderr
    for unit in deployment.sandbox.data.units:
        assert read_nights(deployment.output / "sandbox" / "cleaner" / feed_filename(unit)) == set()
        widened = expected({"all": deployment.truth(unit)}, "channel")
        assert read_nights(deployment.output / "sandbox" / "channel" / feed_filename(unit)) == widened


def test_when_escapia_answers_all_empty_every_profile_keeps_its_nights(deployment):
    configure(deployment, "hsapi-full")
    assert deployment.run("sync").returncode == 0
    files = sorted(deployment.output.glob("sandbox/*/*.ics"))
    before = {p: read_nights(p) if "owner" not in p.parts else inclusive_nights(p) for p in files}
    assert sum(map(len, before.values())) > 100
    deployment.sandbox.inject("empty")  # every calendar parses, and is empty
    result = deployment.run("sync")
    assert result.returncode == 1 and "breaker" in result.stderr
    after = {p: read_nights(p) if "owner" not in p.parts else inclusive_nights(p) for p in files}
    assert after == before


def test_adding_profiles_fetches_no_calendar_only_the_kind_index(deployment):
    configure(deployment, "hsapi", "")
    for _ in range(2):
        assert deployment.run("sync").returncode == 0
    configure(deployment, "hsapi")
    sandbox = deployment.sandbox
    sandbox.reset_request_log()
    result = deployment.run("sync")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    ops = Counter(r["op"] for r in sandbox.requests)
    assert ops["GetUnitNonAvailability"] == 0 and ops["SearchReservationSummaries"] >= 1
    assert set(ops) == {"GetReservationChanges", "SearchWorkOrders", "SearchReservationSummaries"}
    for unit in sandbox.data.units:  # written from the stored calendars, labelled by the index
        truth = sandbox.blocked_nights_by_kind(unit, *deployment.window)
        path = deployment.output / "sandbox" / "cleaner" / feed_filename(unit)
        assert read_nights(path) == expected(truth, "cleaner"), unit


def test_a_profile_taken_out_of_the_config_is_served_with_every_blocked_night_until_prune(deployment):
    configure(deployment, "hsapi")
    assert deployment.run("sync").returncode == 0
    channel = deployment.output / "sandbox" / "channel" / feed_filename("1020-105")
    assert channel.exists()
    # The operator takes 'channel' out of the config; the channel still polls its URL.
    configure(deployment, "hsapi", PROFILES.replace("    channel:\n      buffer_after_days: 1\n"
                                                    "      summary: Booked\n", ""))
    assert "channel" not in deployment.config.read_text()
    assert deployment.run("sync").returncode == 0
    deployment.sandbox.add_reservation("1020-105", TODAY + 60 * DAY, TODAY + 63 * DAY)  # a new booking
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    assert TODAY + 60 * DAY in read_nights(deployment.feed("1020-105"))  # the default feed blocks it
    assert channel.exists(), "still served for retire_grace_days"
    assert read_nights(channel) == read_nights(deployment.feed("1020-105")), "the default feed's nights"


def test_rotate_survives_a_damaged_profiles_entry(deployment):
    write_config(deployment.config, account_yaml(extra="    feed_tokens: true\n    feed_token_secret: "
                                                       + "t" * 40 + "\n"))
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("feeds:\n", "feeds:\n" + PROFILES))
    assert deployment.run("sync").returncode == 0
    feeds_json = deployment.state / "accounts" / "sandbox" / "feeds.json"
    stamps = read_state(feeds_json)
    for entry in stamps.values():
        entry["profiles"]["cleaner"] = "garbage"  # a damaged entry
    write_state(feeds_json, stamps)
    result = deployment.run("rotate", "--account", "sandbox", "--unit", "1020-105")
    assert "Traceback" not in result.stderr and "Error" not in result.stderr.split("\n")[-2], result.stderr
    assert f"state {describe(feeds_json)} is not as expected" in result.stderr, "the damage was read"


def _damage(deployment, change) -> None:
    feeds_json = deployment.state / "accounts" / "sandbox" / "feeds.json"
    stamps = read_state(feeds_json)
    for entry in stamps.values():
        change(entry)
    write_state(feeds_json, stamps)


def test_prune_survives_a_withdrawn_time_without_a_zone(deployment):
    configure(deployment, "hsapi")
    assert deployment.run("sync").returncode == 0
    _damage(deployment, lambda e: e["profiles"]["cleaner"].update(withdrawn="2020-01-01T00:00:00"))
    result = deployment.run("prune", "--dry-run")
    assert "internal error" not in result.stderr, result.stderr


def test_sync_survives_an_old_profile_name_time_without_a_zone(deployment):
    configure(deployment, "hsapi")
    assert deployment.run("sync").returncode == 0
    _damage(deployment, lambda e: e["profiles"]["cleaner"].update(old={"x.ics": "2020-01-01T00:00:00"}))
    result = deployment.run("sync", "--full")
    assert result.returncode == 0, result.stderr


def test_prune_never_removes_the_feeds_of_a_configured_profile(deployment):
    configure(deployment, "hsapi")
    assert deployment.run("sync").returncode == 0
    cleaner = deployment.output / "sandbox" / "cleaner" / feed_filename("1020-105")
    # withdrawn once (taken out of the config and a sync ran), then put back: no sync since
    eight_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=8)).isoformat()
    _damage(deployment, lambda e: e["profiles"]["cleaner"].update(withdrawn=eight_days_ago))
    result = deployment.run("prune")
    assert result.returncode == 0, result.stderr
    assert cleaner.exists(), result.stdout
