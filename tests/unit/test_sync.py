"""The sync loop with a scripted source: containment, DTSTAMP rule, guards, masking."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest

from escapia_ical.config import Config, FeedSettings, HsapiAccount, HttpPolicy
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import BlockedRange, Unit
from escapia_ical.sync import SyncOptions, run_sync

TODAY = dt.date(2026, 11, 23)
T0 = dt.datetime(2026, 11, 23, 22, 0, 0, tzinfo=dt.UTC)
SECRET = "s3cr3t-€-value"


class ScriptedSource:
    """Answers from a dict: unit id -> list of ranges, or an exception to raise."""

    def __init__(self, calendars: dict, listing: Exception | None = None):
        self.calendars = calendars
        self.listing = listing
        self.requests_by_operation: Counter[str] = Counter()
        self.responses_by_status: Counter[tuple[str, str]] = Counter()

    def list_units(self):
        if self.listing:
            raise self.listing
        return [Unit(unit_id, f"Unit {unit_id}") for unit_id in self.calendars]

    def blocked_ranges(self, unit, window, *, fresh=False):
        self.requests_by_operation["fresh fetch" if fresh else "fetch"] += 1
        answer = self.calendars[unit.id]
        if isinstance(answer, list) and answer and isinstance(answer[0], list):
            answer = answer.pop(0)  # a script of answers, one per call
        if isinstance(answer, Exception):
            raise answer
        return answer


def nights(a: int, b: int) -> BlockedRange:
    return BlockedRange(TODAY + dt.timedelta(days=a), TODAY + dt.timedelta(days=b))


@pytest.fixture
def world(tmp_path, monkeypatch):
    sources = {}
    monkeypatch.setattr("escapia_ical.sync.runner.make_source", lambda account, *a, **k: sources[account.name])
    # One request at a time: the scripted answers are consumed in unit order.
    accounts = tuple(HsapiAccount(name=n, pmcid="1", client_id="id", client_secret=SECRET, mode="full",
                                  http=HttpPolicy(max_concurrency=1)) for n in ("a", "b"))
    config = Config(tmp_path / "c.yaml", tmp_path / "out", tmp_path / "state", FeedSettings(), accounts)

    def sync(now=T0, **options):
        return run_sync(config, SyncOptions(today=TODAY, now=lambda: now, **options))

    return config, sources, sync


def test_dtstamp_is_kept_while_unchanged_and_renewed_on_change(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 3)]})
    sources["b"] = ScriptedSource({})
    feed = config.output_dir / "a" / "1.ics"
    sync(now=T0)
    assert b"DTSTAMP:20261123T220000Z" in feed.read_bytes()
    first = feed.read_bytes()
    report = sync(now=T0 + dt.timedelta(hours=1))
    assert feed.read_bytes() == first and not report.accounts["a"].units[0].rewritten
    sources["a"].calendars["1"] = [nights(1, 4)]
    report = sync(now=T0 + dt.timedelta(hours=2))
    assert b"DTSTAMP:20261124T000000Z" in feed.read_bytes()
    assert report.accounts["a"].units[0].rewritten


def test_an_unexpected_error_in_one_unit_does_not_stop_the_others(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": ZeroDivisionError("boom"), "2": [nights(1, 2)]})
    sources["b"] = ScriptedSource({"3": [nights(1, 2)]})
    report = sync()
    errors = {u.unit_id: u.error for r in report.accounts.values() for u in r.units}
    assert errors["1"].startswith("unexpected ZeroDivisionError: boom")
    assert errors["2"] is None and errors["3"] is None
    assert (config.output_dir / "a" / "2.ics").exists() and (config.output_dir / "b" / "3.ics").exists()
    assert not report.ok


def test_an_unexpected_error_in_one_account_does_not_stop_the_others(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({}, listing=RecursionError("deep"))
    sources["b"] = ScriptedSource({"3": [nights(1, 2)]})
    report = sync()
    assert report.accounts["a"].error.startswith("unexpected RecursionError")
    assert report.accounts["b"].error is None and (config.output_dir / "b" / "3.ics").exists()


def test_secrets_echoed_by_a_server_are_masked(world, caplog):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": SourceError(f"UnitCalendarAvail: bad password {SECRET!r}")})
    sources["b"] = ScriptedSource({}, listing=SourceError(f"auth: {SECRET}"))
    report = sync()
    assert SECRET not in report.accounts["a"].units[0].error and "***" in report.accounts["a"].units[0].error
    assert SECRET not in report.accounts["b"].error
    assert SECRET not in caplog.text


def test_auth_failure_mid_account_fails_the_remaining_units_and_keeps_their_feeds(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 2)], "2": [nights(1, 2)], "3": [nights(1, 2)]})
    sources["b"] = ScriptedSource({})
    sync()
    kept = (config.output_dir / "a" / "3.ics").read_bytes()
    sources["a"].calendars.update({"2": AuthError("HTTP 401 even with a fresh token"), "3": [nights(5, 9)]})
    report = sync()
    result = report.accounts["a"]
    assert result.error == "HTTP 401 even with a fresh token"
    assert [(u.unit_id, bool(u.error)) for u in result.units] == [("1", False), ("2", True), ("3", True)]
    assert (config.output_dir / "a" / "3.ics").read_bytes() == kept
    assert sources["a"].requests_by_operation["fetch"] == 2 * 3 - 1  # unit 3 was not asked again


def test_an_account_that_suddenly_lists_no_units_keeps_its_feeds(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 2)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars = {}
    report = sync()
    assert re.match(r"Escapia lists no units, but 1 feeds were published before", report.accounts["a"].error)
    assert (config.output_dir / "a" / "1.ics").exists()
    assert sync(force=True).accounts["a"].error is None  # --force accepts it
    assert report.accounts["b"].error is None  # never had feeds: an empty list is fine


def test_dry_run_writes_nothing(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 2)]})
    sources["b"] = ScriptedSource({})
    report = sync(dry_run=True)
    assert report.accounts["a"].units[0].rewritten and not config.output_dir.exists()
    assert not (config.state_dir / "accounts" / "a" / "feeds.json").exists()


def test_one_empty_answer_never_blanks_a_feed(world, caplog):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    feed = config.output_dir / "a" / "1.ics"
    kept = feed.read_bytes()
    sources["a"].calendars["1"] = [[], [nights(1, 11)]]  # a glitch, then the truth again
    report = sync(now=T0 + dt.timedelta(minutes=5))
    assert feed.read_bytes() == kept
    assert report.accounts["a"].units[0].error == (
        "future blocked nights dropped from 10 to 0, and a second fetch disagreed; keeping the last feed")
    assert sources["a"].requests_by_operation["fresh fetch"] == 1


def test_a_confirmed_cancellation_is_published_with_a_warning(world, caplog):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)], "2": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars.update({"1": [], "2": [nights(1, 3)]})  # both stay that way
    report = sync(now=T0 + dt.timedelta(minutes=5))
    assert report.ok
    assert b"BEGIN:VEVENT" not in (config.output_dir / "a" / "1.ics").read_bytes()
    assert (config.output_dir / "a" / "2.ics").read_bytes().count(b"BEGIN:VEVENT") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "a/1: future blocked nights dropped from 10 to 0; confirmed by a second fetch, publishing" in warnings
    assert "a/2: future blocked nights dropped from 10 to 2; confirmed by a second fetch, publishing" in warnings


def test_force_skips_the_second_opinion(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = [[], [nights(1, 11)]]
    assert sync(force=True).ok
    assert sources["a"].requests_by_operation["fresh fetch"] == 0
    assert b"BEGIN:VEVENT" not in (config.output_dir / "a" / "1.ics").read_bytes()


def test_small_changes_need_no_second_opinion(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = [nights(1, 7)]
    assert sync().ok
    assert sources["a"].requests_by_operation["fresh fetch"] == 0
