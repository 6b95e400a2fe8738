"""The sync loop with a scripted source: containment, DTSTAMP rule, guards, masking."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import threading
from collections import Counter

import pytest

from escapia_ical.config import Config, FeedSettings, HsapiAccount, HttpPolicy
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.feeds import publish, spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.model import BlockedRange, Explanation, Unit, UnitCalendar
from escapia_ical.sources import Notes
from escapia_ical.state import read_state, write_state
from escapia_ical.sync import SyncOptions, run_sync

TODAY = dt.date(2026, 11, 23)
T0 = dt.datetime(2026, 11, 23, 22, 0, 0, tzinfo=dt.UTC)
SECRET = "s3cr3t-€-value"


class ScriptedSource:
    """Answers from a dict: unit id -> list of ranges, or an exception to raise, or a list
    of such answers (one per call). ``views``: unit id -> the ranges the independent view
    shows booked (a missing unit: the view cannot be asked)."""

    def __init__(self, calendars: dict, listing: Exception | None = None, views: dict | None = None):
        self.calendars = calendars
        self.listing = listing
        self.views = views if views is not None else {}
        self.covered: dict = {}  # unit id -> the spans the answer covers (default: the window)
        self.requests_by_operation: Counter[str] = Counter()
        self.responses_by_status: Counter[tuple[str, str]] = Counter()
        self.notes = Notes()

    def list_units(self):
        if self.listing:
            raise self.listing
        return [Unit(unit_id, f"Unit {unit_id}") for unit_id in self.calendars]

    def calendar(self, unit, window):
        self.requests_by_operation["fetch"] += 1
        answer = self.calendars[unit.id]
        if isinstance(answer, list) and answer and isinstance(answer[0], list):
            answer = answer.pop(0)  # a script of answers, one per call
        if isinstance(answer, Exception):
            raise answer
        return UnitCalendar(tuple(answer), tuple(self.covered.get(unit.id, [(window.start, window.end)])))

    # An HSAPI change feed where nothing ever changes (full mode reads it for evidence).
    largest_change_page = 0

    def recent_version(self, deadline=None):
        return 0

    def changes_since(self, version, deadline=None, *, known_end=None):
        return [], version

    def open_work_orders(self, today, deadline=None):
        return {}

    def explain(self, unit, nights):
        self.requests_by_operation["explain"] += 1
        if unit.id not in self.views:
            raise SourceError("SearchReservationSummaries: HTTP 403")
        booked = spans.intersect(nights, [(r.start, r.end) for r in self.views[unit.id]])
        return Explanation("the reservations", tuple(spans.subtract(nights, booked)), tuple(booked))


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


def test_an_account_that_suddenly_lists_no_units_keeps_its_feeds_until_accepted(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 2)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars = {}
    report = sync()
    assert re.match(r"Escapia lists no units, but 1 feeds were published before", report.accounts["a"].error)
    assert "escapia-ical accept --account a" in report.accounts["a"].error
    assert (config.output_dir / "a" / "1.ics").exists()
    assert sync(force=True).accounts["a"].error is not None  # --force only rewrites files
    book = HoldBook.load(config.state_dir / "accounts" / "a")
    book.accept(None, "ops", T0)
    book.save()
    assert sync().accounts["a"].error is None  # accepted once ...
    assert sync().accounts["a"].error is not None  # ... and only once
    assert report.accounts["b"].error is None  # never had feeds: an empty list is fine


def test_dry_run_writes_nothing(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 2)]})
    sources["b"] = ScriptedSource({})
    report = sync(dry_run=True)
    assert report.accounts["a"].units[0].rewritten and not config.output_dir.exists()
    assert not (config.state_dir / "state.db").exists()  # (checked first: reading would create it)
    assert read_state(config.state_dir / "accounts" / "a" / "feeds.json") is None


def shown(config, unit="1", account="a") -> list[tuple[int, int]]:
    """The feed's events as (first night, checkout) offsets from TODAY."""
    data = (config.output_dir / account / f"{unit}.ics").read_text()
    starts = [dt.date.fromisoformat(f"{v[:4]}-{v[4:6]}-{v[6:8]}") for v in re.findall(r"DTSTART;VALUE=DATE:(\d+)", data)]
    ends = [dt.date.fromisoformat(f"{v[:4]}-{v[4:6]}-{v[6:8]}") for v in re.findall(r"DTEND;VALUE=DATE:(\d+)", data)]
    return [((s - TODAY).days, (e - TODAY).days) for s, e in zip(starts, ends, strict=True)]


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_an_empty_answer_the_reservations_contradict_is_held_for_as_long_as_they_do(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)], "2": [nights(3, 4)]}, views={"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    kept = (config.output_dir / "a" / "1.ics").read_bytes()
    sources["a"].calendars["1"] = [nights(20, 22)]  # loses 1..11, gains 20..22
    for t in (5, 20, 60):  # agreeing answers, but the reservations still show the stay
        report = sync(now=minutes(t))
        unit = report.accounts["a"].units[0]
        assert unit.held and unit.error.startswith(
            "held: Escapia's calendar would free 10 future nights (2026-11-24..2026-12-03), but the "
            "reservations still show(s) them booked")
        assert shown(config) == [(1, 11), (20, 22)]  # old and new: blocking more never double-books
    assert kept != (config.output_dir / "a" / "1.ics").read_bytes()
    assert not report.ok and report.accounts["a"].units[1].error is None
    status_holds = report.accounts["a"].holds
    assert set(status_holds) == {"1"} and status_holds["1"]["booked"] is True


def test_a_cancellation_the_reservations_confirm_is_published_at_once(world, caplog):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)], "2": [nights(1, 3), nights(5, 9)]},
                                  views={"1": [], "2": [nights(1, 3)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars.update({"1": [], "2": [nights(1, 3)]})
    with caplog.at_level(logging.INFO):
        report = sync(now=minutes(5))
    assert report.ok
    assert shown(config, "1") == [] and shown(config, "2") == [(1, 3)]
    assert "a/1: 10 future nights (2026-11-24..2026-12-03) freed, as the reservations show(s); publishing" in [
        r.getMessage() for r in caplog.records]
    assert sources["a"].requests_by_operation == {"fetch": 4, "explain": 2}


def test_an_unexplained_loss_is_published_once_answers_agree_across_runs(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)], "2": [], "3": [], "4": []})  # no view to ask
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = [nights(1, 4)]
    assert sync(now=minutes(5)).accounts["a"].units[0].held
    assert sync(now=minutes(12)).accounts["a"].units[0].held  # 7 minutes of agreement: not yet
    assert shown(config) == [(1, 11)]
    report = sync(now=minutes(15.5))  # 10.5 minutes since the first agreeing answer
    assert report.ok and report.accounts["a"].units[0].verdict == "confirmed"
    assert shown(config) == [(1, 4)]


def test_an_answer_that_changes_restarts_the_confirmation(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)], "2": [], "3": [], "4": []})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = [[], [nights(1, 11)], [], [], []]  # a flaky server
    for t in (5, 10, 16, 24):  # empty, whole, empty, empty: agreeing only since 16
        report = sync(now=minutes(t))
        assert shown(config) == [(1, 11)]
    assert report.accounts["a"].units[0].held
    assert report.accounts["a"].holds["1"]["since"] == minutes(16).isoformat()
    report = sync(now=minutes(27))
    assert report.accounts["a"].units[0].verdict == "confirmed" and shown(config) == []


def test_the_breaker_holds_every_unexplained_loss_of_the_account_until_accepted(world, caplog):
    config, sources, sync = world
    sources["a"] = ScriptedSource({str(u): [nights(u, u + 5)] for u in range(1, 9)})
    sources["b"] = ScriptedSource({})
    sync()
    for u in ("1", "2", "3"):  # 3 of 8 units (37 %) lose everything, unexplained
        sources["a"].calendars[u] = []
    report = sync(now=minutes(5))
    assert [u.unit_id for u in report.accounts["a"].units if u.held] == ["1", "2", "3"]
    assert report.accounts["a"].breaker == {"since": minutes(5).isoformat(), "units": 3, "fetched": 8}
    assert "a: 3 of 8 units fetched would lose nights without explanation" in caplog.text
    report = sync(now=minutes(30))  # agreeing for 25 minutes: the breaker still holds
    assert all(u.held for u in report.accounts["a"].units[:3])
    assert report.accounts["a"].units[0].error.startswith("held by the account breaker (3 of 8 units lost")
    assert shown(config, "1") == [(1, 6)]
    book = HoldBook.load(config.state_dir / "accounts" / "a")
    assert [u for u, _ in book.accept(None, "ops", minutes(31))] == ["1", "2", "3"]
    book.save()
    report = sync(now=minutes(35))
    assert report.ok and [u.verdict for u in report.accounts["a"].units[:3]] == ["accepted"] * 3
    assert shown(config, "1") == [] and report.accounts["a"].breaker is None


def test_few_losses_do_not_trip_the_breaker(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({str(u): [nights(u, u + 5)] for u in range(1, 16)})
    sources["b"] = ScriptedSource({})
    sync()
    for u in ("1", "2"):  # 2 units: fewer than 3
        sources["a"].calendars[u] = []
    assert sync(now=minutes(5)).accounts["a"].breaker is None


def test_nights_added_elsewhere_do_not_offset_a_loss(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 4)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = [nights(30, 60)]  # 3 nights lost, 30 gained
    unit = sync(now=minutes(5)).accounts["a"].units[0]
    assert unit.held and shown(config) == [(1, 4), (30, 60)]


def test_force_rewrites_files_but_never_publishes_a_held_loss(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].calendars["1"] = []
    report = sync(now=minutes(5), force=True)
    assert report.accounts["a"].units[0].held and report.accounts["a"].units[0].rewritten
    assert shown(config) == [(1, 11)]


def test_nights_the_answer_does_not_cover_are_published_blocked(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 3)]})
    sources["b"] = ScriptedSource({})
    sources["a"].covered["1"] = [(TODAY - dt.timedelta(days=7), TODAY + dt.timedelta(days=3))]
    report = sync()
    unit = report.accounts["a"].units[0]
    assert unit.error == ("Escapia's answer does not cover 2026-11-26..2028-11-21 of the feed window "
                          "(2026-11-16..2028-11-21): those 727 nights are published as blocked")
    assert shown(config) == [(1, 3), (3, 730)]  # one event for the tail
    del sources["a"].covered["1"]  # whole again: the tail was a placeholder, not a loss
    report = sync(now=minutes(5))
    assert report.ok and shown(config) == [(1, 3)]
    assert sources["a"].requests_by_operation["explain"] == 0


def test_a_booking_the_feed_knew_stays_known_through_a_gap_in_coverage(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 3), nights(100, 105)]})
    sources["b"] = ScriptedSource({})
    sync()
    sources["a"].covered["1"] = [(TODAY - dt.timedelta(days=7), TODAY + dt.timedelta(days=3))]
    sync(now=minutes(5))  # the tail is uncovered: blocked, the stay at 100 among it
    del sources["a"].covered["1"]
    sources["a"].calendars["1"] = [nights(1, 3)]  # whole again, and the stay at 100 is gone
    unit = sync(now=minutes(10)).accounts["a"].units[0]
    assert unit.held, "a loss of a known booking, unexplained, hidden by the gap before"
    assert (100, 105) in shown(config)


def test_the_night_the_window_gains_is_blocked_until_the_unit_is_fetched(tmp_path, monkeypatch):
    """The daily roll re-renders an unchanged unit without asking Escapia: the night that
    just entered the window was never asked about, so it is blocked, not free."""
    source = ScriptedSource({"1": [nights(1, 3)]})
    monkeypatch.setattr("escapia_ical.sync.runner.make_source", lambda *a, **k: source)
    account = HsapiAccount(name="a", pmcid="1", client_id="id", client_secret=SECRET,
                           http=HttpPolicy(max_concurrency=1))  # incremental: unchanged units roll
    config = Config(tmp_path / "c.yaml", tmp_path / "out", tmp_path / "state", FeedSettings(future_days=30),
                    (account,))
    run_sync(config, SyncOptions(today=TODAY, now=lambda: T0))
    # A fetch asks for a margin past the window (sync/margin.py): the roll needs no placeholder.
    # A unit fetched without it (state of an earlier version) was asked through the window's end:
    path = config.state_dir / "accounts" / "a" / "feeds.json"
    stamps = read_state(path)
    stamps["1.ics"]["through"] = (TODAY + dt.timedelta(days=30)).isoformat()
    write_state(path, stamps)
    later = T0 + dt.timedelta(hours=2)  # past midnight: a new day, no change, no reconcile due yet
    report = run_sync(config, SyncOptions(today=TODAY + dt.timedelta(days=1), now=lambda: later))
    assert report.ok and source.requests_by_operation["fetch"] == 1, "rolled, not fetched"
    assert shown(config) == [(1, 3), (30, 31)]
    source.calendars["1"] = [nights(1, 3)]  # fetched again (the reconcile): the placeholder goes
    report = run_sync(config, SyncOptions(today=TODAY + dt.timedelta(days=1), now=lambda: later, full=True))
    assert report.ok and shown(config) == [(1, 3)]


def test_unreadable_stored_ranges_fall_back_to_the_published_file(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({"1": [nights(1, 11)]})
    sources["b"] = ScriptedSource({})
    sync()
    path = config.state_dir / "accounts" / "a" / "feeds.json"
    data = read_state(path)
    data["1.ics"]["ranges"] += " x"
    write_state(path, data)
    sources["a"].calendars["1"] = []
    unit = sync(now=minutes(5)).accounts["a"].units[0]
    assert unit.held and shown(config) == [(1, 11)]


def test_the_status_keeps_the_holds_when_the_account_then_fails(world):
    config, sources, sync = world
    sources["a"] = ScriptedSource({str(u): [nights(u, u + 5)] for u in range(1, 9)})
    sources["b"] = ScriptedSource({})
    sync()
    for u in ("1", "2", "3"):
        sources["a"].calendars[u] = []
    sync(now=minutes(5))
    sources["a"].listing = SourceError("SearchUnitSummaries: HTTP 502")
    result = sync(now=minutes(10)).accounts["a"]
    assert result.error == "SearchUnitSummaries: HTTP 502"
    assert result.breaker is not None and set(result.holds) == {"1", "2", "3"}


def test_only_the_main_thread_takes_sigterm_and_sigint(world):
    """The threads of a sync block SIGTERM and SIGINT, so that the kernel gives them to the
    main thread: Python runs a handler only there, and a signal a worker took would not wake
    the main thread's wait for the workers (a SIGTERM went unheeded for seconds)."""
    config, sources, sync = world
    seen: dict = {}

    class Watching(ScriptedSource):
        def list_units(self):
            seen[("list", threading.current_thread().name)] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            return super().list_units()

        def calendar(self, unit, window):
            seen[("calendar", threading.current_thread().name)] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            return super().calendar(unit, window)

    sources["a"], sources["b"] = Watching({"1": [nights(1, 2)]}), Watching({"2": [nights(1, 2)]})
    assert sync().ok
    assert {kind for kind, _ in seen} == {"list", "calendar"}
    assert all(name != "MainThread" for _, name in seen), seen  # the accounts ran side by side
    for where, mask in seen.items():
        assert {signal.SIGTERM, signal.SIGINT} <= mask, where
    assert not {signal.SIGTERM, signal.SIGINT} & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def _open_descriptors() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


def test_a_run_opens_each_account_folder_once_and_leaves_none_open(world, monkeypatch):
    """The feeds of a run are written relative to their folder opened once (feeds/publish.py
    OpenFolders), closed when the account is done, also when it failed midway."""
    config, sources, sync = world
    sources["a"] = ScriptedSource({str(i): [nights(1, 1 + i)] for i in range(1, 6)})
    sources["b"] = ScriptedSource({"1": [nights(1, 2)], "2": AuthError("HTTP 401 even with a fresh token")})
    opened: list[str] = []
    real = os.open
    monkeypatch.setattr(publish.os, "open", lambda path, flags, *a, **k: (
        opened.append(str(path)) if flags & os.O_DIRECTORY and str(path) in ("a", "b") else None,
        real(path, flags, *a, **k))[1])
    before = _open_descriptors()
    report = sync()
    assert opened.count("a") == opened.count("b"), "five feeds of a, one of b: as many opens of their folders"
    assert [p for p in _open_descriptors() - before if str(config.output_dir) in p] == []
    assert len(list((config.output_dir / "a").glob("*.ics"))) == 5 and (config.output_dir / "b" / "1.ics").exists()
    assert report.accounts["b"].units[1].error
