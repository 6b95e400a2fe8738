"""The daily roll (issue 13): fetches ask for a margin of nights past the feed window
(sync/margin.py), so the night the window gains at midnight was asked about; the roll
(sync/roll.py) then re-renders only the feeds whose content changes, and moves the others'
``day`` alone. The safety rule holds: a night never asked about is still blocked."""

from __future__ import annotations

import datetime as dt

import hypothesis.strategies as st
import pytest
import responses
from hypothesis import given
from test_sync import ScriptedSource

from escapia_ical.config import Config, EscapianetAccount, FeedSettings, HsapiAccount, HttpPolicy
from escapia_ical.config.profiles import Profile
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.feeds.policy import PublishPolicy
from escapia_ical.feeds.ranges import clip_blocks, feed_blocks
from escapia_ical.model import BlockedRange, FeedWindow, Unit, UnitCalendar
from escapia_ical.sources.escapianet import EscapianetSource
from escapia_ical.state import AccountState
from escapia_ical.sync import SyncOptions, run_sync
from escapia_ical.sync import stamps as sync_stamps
from escapia_ical.sync.margin import MAX_ASKED_NIGHTS, asked_window, margin_days
from escapia_ical.sync.roll import plan_roll
from escapia_ical.sync.stamps import build_feed

TODAY = dt.date(2026, 11, 23)
TOMORROW = TODAY + dt.timedelta(days=1)
T0 = dt.datetime(2026, 11, 23, 21, 0, tzinfo=dt.UTC)
PAST, FUTURE = 7, 30
FEEDS = FeedSettings(past_days=PAST, future_days=FUTURE)
WINDOW = FeedWindow.around(TODAY, PAST, FUTURE)  # nights -7 .. 29
NEXT = FeedWindow.around(TOMORROW, PAST, FUTURE)  # nights -6 .. 30
UNIT = Unit("1", "Unit 1")


def day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def r(a: int, b: int) -> BlockedRange:
    return BlockedRange(day(a), day(b))


def account(**overrides) -> HsapiAccount:
    fields = dict(name="a", pmcid="1", client_id="id", client_secret="s3cret", http=HttpPolicy(max_concurrency=1))
    return HsapiAccount(**{**fields, **overrides})


def config_for(tmp_path, *accounts, feeds: FeedSettings = FEEDS) -> Config:
    return Config(tmp_path / "c.yaml", tmp_path / "out", tmp_path / "state", feeds, accounts or (account(),))


# -- the margin -----------------------------------------------------------------------------


@pytest.mark.parametrize(("past", "future", "hours", "margin"), [
    (7, 730, 6, 2),  # the defaults: a unit is fetched every 6 h at most, +1 day
    (7, 730, 1, 2),  # EscapiaNET's default reconcile
    (7, 730, 24, 2),
    (7, 730, 25, 3),
    (7, 730, 168, 8),  # the longest reconcile_hours the schema allows
    (7, 755, 6, 2),  # 762 + 2 = 764: still within the cap
    (7, 756, 6, 1),  # cut to the cap
    (0, 764, 6, 0),  # the window alone reaches it
    (7, 1100, 6, 0),  # a window past the cap asks for no margin at all
])
def test_the_margin_outlasts_the_reconcile_and_never_passes_the_cap(past, future, hours, margin):
    window = FeedWindow.around(TODAY, past, future)
    assert margin_days(window, hours) == margin
    asked = asked_window(window, account(reconcile_hours=hours))
    assert (asked.start, asked.end) == (window.start, window.end + dt.timedelta(days=margin))
    assert (asked.end - asked.start).days <= max(MAX_ASKED_NIGHTS, (window.end - window.start).days)


@pytest.mark.parametrize(("covered", "through"), [
    ([(day(-7), day(32))], day(32)),  # the whole margin answered
    ([(day(-7), day(30)), (day(30), day(31))], day(31)),  # touching segments: one run
    ([(day(-7), day(30)), (day(31), day(32))], day(30)),  # a gap at the window's end: nothing past it
    ([(day(-7), day(20))], day(30)),  # short of the window: its end (the gap is a placeholder)
])
def test_through_is_what_the_answer_really_covers_past_the_window(tmp_path, covered, through):
    assert spans.covered_from(covered, WINDOW.end) == through
    policy = PublishPolicy("a", FEEDS, HoldBook(tmp_path / "policy.json"), TODAY, WINDOW, T0)
    verdict = policy.decide(policy.assess("1", [], UnitCalendar((), tuple(covered))))
    assert verdict.through == through


def test_a_stored_night_past_the_window_the_feed_showed_is_no_loss_when_freed(tmp_path):
    """Yesterday's fetch stored a stay in the margin (nights 30-31); the feed, rendered for
    yesterday, ends before night 30 and never showed it. Today's answer frees it: published,
    not held. A night the feed did show, freed without explanation, is still held."""
    policy = PublishPolicy("a", FEEDS, HoldBook(tmp_path / "policy.json"), TOMORROW, NEXT, T0)
    answer = UnitCalendar((), ((NEXT.start, NEXT.end + dt.timedelta(days=2)),))

    def explain(nights):
        raise SourceError("SearchReservationSummaries: HTTP 403")

    margin_stay = policy.assess("1", [r(30, 32)], answer, explain, shown_end=WINDOW.end)
    assert margin_stay.lost == [] and policy.decide(margin_stay).kind == "published"
    shown_stay = policy.assess("2", [r(20, 22)], answer, explain, shown_end=WINDOW.end)
    assert shown_stay.lost == [(day(20), day(22))] and policy.decide(shown_stay).kind == "held"
    unknown_end = policy.assess("3", [r(30, 32)], answer, explain)  # no day stored: this window's end
    assert unknown_end.lost == [(day(30), day(31))]


def test_an_escapianet_answer_covers_no_more_than_was_asked(rsps, waits):
    """A batch may answer three years whatever was asked: what lies past the nights asked
    for is dropped, ranges and coverage alike, so ``through`` never claims it."""
    soap, evrn = "http://schemas.xmlsoap.org/soap/envelope/", "http://www.escapia.com/EVRN/2007/02"
    asked = FeedWindow(day(-7), day(32))
    daily = "A" * 40 + "O" + "U" * 4 + "I" + "A" * 20  # nights -7 .. 58: a stay from night 33
    body = (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{soap}"><s:Body>'
            f'<EVRN_UnitCalendarAvailBatchRS xmlns="{evrn}" Version="1.030"><Success/><UnitCalendarAvails>'
            f'<UnitCalendarAvail UnitCode="1" UnitName="Unit 1" LastUpdated="2026-11-20T10:00:00">'
            f'<UnitCalendarAvailSegment StartDate="{day(-7)}"><DailyAvailability>{daily}</DailyAvailability>'
            "</UnitCalendarAvailSegment></UnitCalendarAvail></UnitCalendarAvails>"
            "</EVRN_UnitCalendarAvailBatchRS></s:Body></s:Envelope>").encode()
    rsps.add(responses.POST, "https://api.escapia.test/EVRNContentService.svc", body=body, status=200,
             content_type="text/xml; charset=utf-8")
    source = EscapianetSource(EscapianetAccount(name="e", username="u", password="p",
                                                base_url="https://api.escapia.test", calendar_mode="batch"),
                              sleep=waits.append)
    answer = source.calendar(UNIT, asked)
    assert answer.ranges == () and answer.covered == ((asked.start, asked.end),)


# -- the roll decision ----------------------------------------------------------------------


ASKED_END = day(32)  # the defaults' margin: 2 nights


def entry(config: Config, ranges: list[BlockedRange], through: dt.date | None = ASKED_END,
          unknown: list = (), unit: Unit = UNIT) -> dict:
    """The feeds.json entry a fetch today (asked through ``through``) leaves for ``ranges``."""
    blocks = feed_blocks(ranges, WINDOW)
    stored = feed_blocks(ranges, FeedWindow(WINDOW.start, max(through or WINDOW.end, WINDOW.end)))
    _, stamp = build_feed(config, config.accounts[0], unit, blocks, {}, T0, unknown, through, stored)
    stamp["day"] = TODAY.isoformat()
    return stamp


def roll_of(config: Config, stamp: dict, unit: Unit = UNIT, **kwargs):
    return plan_roll(config, config.accounts[0], unit, stamp, TOMORROW, NEXT, **kwargs)


@pytest.mark.parametrize(("ranges", "changed"), [
    ([], False),
    ([r(1, 3), r(10, 12)], False),  # nowhere near an edge
    ([r(-10, -7)], False),  # checked out on the old start: in neither window
    ([r(-6, -3)], False),  # arrives on the new start: shown whole both days
    ([r(-9, -6)], True),  # its last shown night (-7) drops out
    ([r(-9, -3)], True),  # crosses the start: shown from -7, then from -6
    ([r(30, 32)], True),  # booked in the margin: enters at the far end
    ([r(28, 35)], True),  # crosses the end: shown one night longer
    ([r(31, 33)], False),  # still past the new end
    ([r(1, 3), r(3, 5)], False),  # back to back, in the middle
])
def test_a_feed_changes_only_if_a_block_touches_an_edge(tmp_path, ranges, changed):
    config = config_for(tmp_path)
    roll = roll_of(config, entry(config, ranges))
    assert roll.changed is changed and roll.gained == []
    assert roll.through == ASKED_END and {b.origin for b in roll.stored} <= set(ranges)
    assert roll.blocks == feed_blocks(ranges, NEXT)


def test_an_unchanged_roll_shows_exactly_what_the_feed_shows(tmp_path):
    """The roll's blocks are the window's: the digest it compares is the one a render for
    tomorrow would record, so a skipped feed is byte for byte the one it would write."""
    config = config_for(tmp_path)
    stamp = entry(config, [r(1, 3), r(31, 33)])
    roll = roll_of(config, stamp)
    assert not roll.changed
    _, rendered = build_feed(config, config.accounts[0], UNIT, roll.blocks, stamp, T0)
    assert rendered["digest"] == stamp["digest"] and rendered["dtstamp"] == stamp["dtstamp"]


@pytest.mark.parametrize("through", [day(30), None], ids=["through the old window end", "state of 0.1.0"])
def test_a_night_never_asked_about_is_still_a_placeholder(tmp_path, through):
    """State from before the margin (``through`` = the old window's end, or no ``through``
    at all: its day + future_days): the night the window gains is blocked, so the feed
    changes."""
    config = config_for(tmp_path)
    stamp = entry(config, [r(1, 3)], through=through)
    assert stamp.get("through") == (through and through.isoformat())
    roll = roll_of(config, stamp)
    assert roll.changed and roll.gained == [(day(30), day(31))]
    assert roll.blocks[-1].shown == BlockedRange(day(30), day(31)) and (day(30), day(31)) in roll.unknown


def test_a_margin_that_lasts_one_more_day_is_enough(tmp_path):
    config = config_for(tmp_path)
    assert not roll_of(config, entry(config, [r(1, 3)], through=day(31))).changed


def test_placeholders_in_the_middle_do_not_change_by_themselves(tmp_path):
    config = config_for(tmp_path)
    stamp = entry(config, [r(1, 3), r(10, 14)], unknown=[(day(10), day(14))])
    roll = roll_of(config, stamp)
    assert not roll.changed and roll.unknown == [(day(10), day(14))]


def test_a_renamed_unit_is_rendered_again(tmp_path):
    config = config_for(tmp_path)
    assert roll_of(config, entry(config, [r(1, 3)]), unit=Unit("1", "Unit 1, renamed")).changed


# -- the roll in a sync --------------------------------------------------------------------


class Calendars(ScriptedSource):
    """test_sync's HSAPI-like source whose change feed never changes (unit id -> its
    ranges), answering only what the window asks for; records the windows asked for."""

    def __init__(self, calendars: dict[str, list[BlockedRange]]):
        super().__init__(calendars)
        self.asked: list[FeedWindow] = []

    def calendar(self, unit, window):
        self.requests_by_operation["fetch"] += 1
        self.asked.append(window)
        ranges = [x for x in self.calendars[unit.id] if x.end > window.start and x.start < window.end]
        return UnitCalendar(tuple(ranges), ((window.start, window.end),))

    def explain(self, unit, nights):
        raise SourceError("SearchReservationSummaries: HTTP 403")


@pytest.fixture
def world(tmp_path, monkeypatch):
    source = Calendars({"calm": [r(1, 3), r(10, 12)], "start": [r(-9, -3)], "end": [r(30, 32)],
                        "old": [r(5, 6)]})
    monkeypatch.setattr("escapia_ical.sync.runner.make_source", lambda *a, **k: source)
    profile = Profile("cleaner", future_days=12)  # its window's end moves from night 12 to 13
    config = config_for(tmp_path, account(profiles=(profile,)))

    def sync(today=TODAY, **options):
        # The same moment (no reconcile comes due), another date: midnight has passed.
        return run_sync(config, SyncOptions(today=today, now=lambda: T0, **options))

    return config, source, sync


def files(config: Config) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(config.output_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(config.output_dir.rglob("*.ics"))}


def shown(config: Config, name: str) -> list[tuple[int, int]]:
    lines = (config.output_dir / "a" / name).read_text().splitlines()
    starts = [dt.date.fromisoformat(line[-8:-4] + "-" + line[-4:-2] + "-" + line[-2:])
              for line in lines if line.startswith(("DTSTART", "DTEND"))]
    return [((a - TODAY).days, (b - TODAY).days) for a, b in zip(starts[::2], starts[1::2], strict=True)]


def test_a_block_to_the_last_date_there_is_is_stored_readably_and_rolled(tmp_path, monkeypatch):
    """An owner's block to 9999-12-31 (range_from_api's end for "no end") is one range of
    millions of nights: its record reads back, so the roll moves it without a fetch."""
    source = Calendars({"calm": [r(1, 3)], "forever": [BlockedRange(day(2), dt.date.max)]})
    monkeypatch.setattr("escapia_ical.sync.runner.make_source", lambda *a, **k: source)
    config = config_for(tmp_path, account())
    assert run_sync(config, SyncOptions(today=TODAY, now=lambda: T0)).ok
    entry = AccountState(config.state_dir, "a").feed_stamps()["forever.ics"]
    assert sync_stamps.stored_ranges(entry) == [BlockedRange(day(2), dt.date.max)]
    before = source.requests_by_operation["fetch"]
    assert run_sync(config, SyncOptions(today=TOMORROW, now=lambda: T0)).ok
    assert source.requests_by_operation["fetch"] == before  # rolled, not fetched again


def test_fetches_ask_for_the_margin_and_the_state_keeps_it(world):
    config, source, sync = world
    assert sync().ok
    assert {(w.start, w.end) for w in source.asked} == {(WINDOW.start, day(32))}
    stamps = AccountState(config.state_dir, "a").feed_stamps()
    assert stamps["end.ics"]["ranges"] == f"{day(30)}+2" and stamps["end.ics"]["through"] == str(day(32))
    assert shown(config, "end.ics") == [] and stamps["end.ics"]["events"] == 0  # the margin is never shown


def test_the_roll_rewrites_only_the_feeds_whose_content_changes(world, monkeypatch):
    config, source, sync = world
    assert sync().ok
    stamps = AccountState(config.state_dir, "a")
    before, entries = files(config), dict(stamps.feed_stamps())
    entries["old.ics"] = {**entries["old.ics"], "through": str(WINDOW.end)}  # state from before the margin
    stamps.save_feed_stamps(entries)
    rendered = []
    real = sync_stamps.render_feed
    monkeypatch.setattr(sync_stamps, "render_feed", lambda account, unit, *a: rendered.append(unit.id)
                        or real(account, unit, *a))
    report = sync(today=TOMORROW)
    assert sorted(rendered) == ["end", "old", "start"], "an unchanged feed is not even rendered"
    assert report.ok and source.requests_by_operation["fetch"] == 4, "rolled, not fetched"
    after = files(config)
    rewritten = {name for name in before if after[name] != before[name]}
    # (the cleaner's 12-night window sees neither the margin's stay nor the placeholder)
    assert rewritten == {"a/start.ics", "a/end.ics", "a/old.ics", "a/cleaner/start.ics"}
    assert after["a/calm.ics"] == before["a/calm.ics"]  # bytes and mtime: DTSTAMP kept
    assert shown(config, "start.ics") == [(-6, -3)] and shown(config, "end.ics") == [(30, 31)]
    assert shown(config, "old.ics") == [(5, 6), (30, 31)], "never asked about: a placeholder"
    rolled = stamps.feed_stamps()
    assert rolled["calm.ics"] == {**entries["calm.ics"], "day": TOMORROW.isoformat()}
    assert {u.unit_id for u in report.accounts["a"].units if u.rewritten} == {"start", "end", "old"}


def test_a_profile_whose_window_gains_a_block_is_rewritten_alone(world):
    config, source, sync = world
    source.calendars["calm"] = [r(1, 3), r(12, 14)]  # enters the cleaner's 12-night window
    assert sync().ok
    before = files(config)
    assert sync(today=TOMORROW).ok
    after = files(config)
    assert after["a/calm.ics"] == before["a/calm.ics"], "the default feed shows the same"
    assert after["a/cleaner/calm.ics"] != before["a/cleaner/calm.ics"]
    assert shown(config, "cleaner/calm.ics") == [(1, 3), (12, 13)]


def test_a_missing_file_is_written_again_at_the_roll(world):
    config, source, sync = world
    assert sync().ok
    (config.output_dir / "a" / "cleaner" / "calm.ics").unlink()
    assert sync(today=TOMORROW).ok
    assert shown(config, "cleaner/calm.ics") == [(1, 3), (10, 12)]


def test_a_dry_run_roll_changes_no_state(world):
    config, source, sync = world
    assert sync().ok
    entries = dict(AccountState(config.state_dir, "a").feed_stamps())
    report = sync(today=TOMORROW, dry_run=True)
    assert {u.unit_id for u in report.accounts["a"].units if u.rewritten} == {"start", "end"}
    assert dict(AccountState(config.state_dir, "a").feed_stamps()) == entries


def test_a_margin_stay_freed_before_the_feed_showed_it_is_published_not_held(world):
    """Fetched the day after (no roll in between): the margin's stay, now inside the window
    but never in the feed, is gone from Escapia's answer without explanation: nothing the
    feed showed is lost, so nothing is held."""
    config, source, sync = world
    assert sync().ok
    source.calendars["end"] = []
    report = sync(today=TOMORROW, full=True)
    assert report.ok and not report.accounts["a"].holds
    assert shown(config, "end.ics") == []


def test_a_folder_in_a_feeds_place_is_an_error_at_the_roll_not_skipped(world):
    config, source, sync = world
    assert sync().ok
    path = config.output_dir / "a" / "calm.ics"
    path.unlink()
    path.mkdir()
    report = sync(today=TOMORROW)
    errors = {u.unit_id: u.error for u in report.accounts["a"].units if u.error}
    assert list(errors) == ["calm"] and "cannot write" in errors["calm"]


@given(st.lists(st.tuples(st.integers(-20, 50), st.integers(1, 15)), max_size=12),
       st.integers(-10, 10), st.integers(0, 40), st.integers(0, 5))
def test_clipping_merged_blocks_again_is_the_same_as_merging_for_the_narrower_window(pairs, start, length,
                                                                                        margin):
    ranges = [r(a, a + n) for a, n in pairs]
    narrow = FeedWindow(day(start), day(start + length))
    wide = FeedWindow(narrow.start, narrow.end + dt.timedelta(days=margin))
    assert clip_blocks(feed_blocks(ranges, wide), narrow) == feed_blocks(ranges, narrow)
