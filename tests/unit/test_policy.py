"""The publish policy alone: which nights a verdict keeps, explains, holds or confirms."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3

import pytest

from escapia_ical.config import FeedSettings
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.feeds.policy import MAX_LOOKUPS, PublishPolicy
from escapia_ical.model import BlockedRange, Explanation, FeedWindow, UnitCalendar
from escapia_ical.state import read_state, write_state

D = dt.date
TODAY = D(2027, 12, 30)  # the year ends in two days; 2028 has a Feb 29
WINDOW = FeedWindow(TODAY - dt.timedelta(days=7), TODAY + dt.timedelta(days=70))
T0 = dt.datetime(2027, 12, 30, 10, 0, tzinfo=dt.UTC)


def r(start: D, end: D) -> BlockedRange:
    return BlockedRange(start, end)


def answer(*ranges: BlockedRange, covered=None) -> UnitCalendar:
    return UnitCalendar(tuple(ranges), tuple(covered or [(WINDOW.start, WINDOW.end)]))


def view(booked=()):
    def explain(nights):
        hit = spans.intersect(nights, [(b.start, b.end) for b in booked])
        return Explanation("the view", tuple(spans.subtract(nights, hit)), tuple(hit))
    return explain


def no_view(nights):
    raise SourceError("HTTP 403")


@pytest.fixture
def policy(tmp_path):
    def make(now=T0, today=TODAY, evidence=None, book=None, **settings):
        return PublishPolicy("acct", FeedSettings(**settings), book or HoldBook(tmp_path / "accounts" / "acct" / "policy.json"),
                             today, WINDOW, now, evidence)
    return make


def verdict(p, previous, new, explain=no_view, unit="u"):
    return p.decide(p.assess(unit, previous, new, explain))


def tripped(policy, book, old, units="abc"):
    """Return after a run in which ``units`` lost ``old`` without explanation: the breaker is set."""
    p = policy(book=book)
    for unit in units:
        verdict(p, old, answer(), unit=unit)
    p.finish(len(units))
    assert book.breaker is not None


def test_only_future_nights_of_the_window_can_be_lost(policy):
    p = policy()
    stays = [r(TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=1)),  # crosses today
             r(WINDOW.end - dt.timedelta(days=1), WINDOW.end + dt.timedelta(days=5))]  # crosses the end
    a = p.assess("u", stays, answer())
    assert a.lost == [(TODAY, TODAY + dt.timedelta(days=1)), (WINDOW.end - dt.timedelta(days=1), WINDOW.end)]
    assert policy().assess("u", [r(WINDOW.start - dt.timedelta(days=9), TODAY)], answer()).lost == []


def test_back_to_back_and_one_night_stays_across_year_end_and_leap_day(policy):
    stays = [r(D(2027, 12, 31), D(2028, 1, 1)), r(D(2028, 1, 1), D(2028, 1, 3)),  # one night, then back-to-back
             r(D(2028, 2, 28), D(2028, 3, 1))]  # Feb 28 and Feb 29
    new = answer(r(D(2027, 12, 31), D(2028, 1, 1)), r(D(2028, 2, 28), D(2028, 2, 29)))
    p = policy()
    a = p.assess("u", stays, new, view())
    assert a.lost == [(D(2028, 1, 1), D(2028, 1, 3)), (D(2028, 2, 29), D(2028, 3, 1))]
    assert p.decide(a).kind == "pending"  # shown free by the view only: the breaker decides
    v = p.finish(fetched=20)["u"]
    assert v.kind == "explained" and v.ranges == list(new.ranges)


def test_a_held_feed_keeps_the_lost_stays_whole_and_gains_the_new_ones(policy):
    old = [r(D(2028, 1, 1), D(2028, 1, 3)), r(D(2028, 1, 3), D(2028, 1, 5))]  # back-to-back
    v = verdict(policy(), old, answer(r(D(2028, 2, 1), D(2028, 2, 2))))
    assert v.kind == "held"
    assert sorted(v.ranges) == [*old, r(D(2028, 2, 1), D(2028, 2, 2))]  # the boundary survives


def test_the_explained_part_is_freed_and_the_rest_held(policy):
    old = [r(D(2028, 1, 1), D(2028, 1, 5)), r(D(2028, 1, 10), D(2028, 1, 12))]
    p = policy(evidence={"u": [(D(2028, 1, 10), D(2028, 1, 12))]})  # the change feed: cancelled
    v = verdict(p, old, answer(), view(booked=[r(D(2028, 1, 2), D(2028, 1, 3))]))
    # What the change feed shows freed goes; a stay the view still shows partly booked stays
    # whole until the two agree.
    assert v.kind == "held" and v.kept == [(D(2028, 1, 1), D(2028, 1, 5))]
    assert sorted(v.ranges) == [r(D(2028, 1, 1), D(2028, 1, 5))]
    assert p.book.holds["u"].booked


def test_a_held_feed_keeps_its_past_nights_too(policy):
    past, future = r(TODAY - dt.timedelta(days=5), TODAY - dt.timedelta(days=2)), r(D(2028, 1, 1), D(2028, 1, 5))
    v = verdict(policy(), [past, future], answer())
    assert v.kind == "held" and sorted(v.ranges) == [past, future]


def test_change_feed_evidence_needs_no_lookup(policy):
    asked = []
    p = policy(evidence={"u": [(D(2028, 1, 1), D(2028, 1, 5))]})
    v = verdict(p, [r(D(2028, 1, 1), D(2028, 1, 5))], answer(), lambda n: asked.append(n))
    assert v.kind == "explained" and asked == [] and "the change feed" in v.message


def test_lookups_stop_after_the_cap_and_a_failure_is_the_units_alone(policy):
    def failing(nights):
        raise SourceError("HTTP 403")
    p = policy()
    old = [r(D(2028, 1, 1), D(2028, 1, 3))]
    a = p.assess("a", old, answer(), failing)
    assert a.note == "could not be checked: HTTP 403" and not a.free and not a.booked
    assert p.assess("b", old, answer(), view()).free == [(D(2028, 1, 1), D(2028, 1, 3))]
    p = policy()
    counted = []
    for unit in range(MAX_LOOKUPS + 5):
        a = p.assess(str(unit), old, answer(), lambda n: counted.append(n) or Explanation("v", (), tuple(n)))
    assert len(counted) == MAX_LOOKUPS and "more than 25 units" in a.note


def test_confirmation_needs_agreeing_answers_confirm_minutes_apart(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old, new = [r(D(2028, 1, 1), D(2028, 1, 5))], answer(r(D(2028, 1, 1), D(2028, 1, 2)))
    for minutes, kind in ((0, "held"), (9, "held"), (10, "pending")):
        p = policy(now=T0 + dt.timedelta(minutes=minutes), book=book, confirm_minutes=10)
        assert verdict(p, old, new).kind == kind
    assert p.finish(fetched=20) == {"u": p._pending["u"][0]} and "u" not in book.holds


def test_confirm_minutes_zero_still_needs_a_second_run(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    assert verdict(policy(book=book, confirm_minutes=0), old, answer()).kind == "held"
    assert verdict(policy(book=book, confirm_minutes=0), old, answer()).kind == "pending"


def test_agreement_survives_midnight(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(TODAY, TODAY + dt.timedelta(days=4))]  # tonight's night passes into the past
    verdict(policy(book=book), old, answer())
    later = policy(now=T0 + dt.timedelta(hours=15), today=TODAY + dt.timedelta(days=1), book=book)
    assert verdict(later, old, answer()).kind == "pending"


@pytest.mark.parametrize(("losing", "fetched", "trips"), [(3, 15, True), (3, 16, False), (2, 2, False),
                                                          (5, 10, True), (3, 3, True)])
def test_the_breaker_needs_enough_units_and_a_large_enough_share(policy, losing, fetched, trips):
    p = policy()
    for unit in range(losing):
        verdict(p, [r(D(2028, 1, 1), D(2028, 1, 5))], answer(), unit=str(unit))
    p.finish(fetched)
    assert (p.book.breaker is not None) == trips
    assert all(h.breaker == trips for h in p.book.holds.values())


def test_the_breaker_releases_itself_once_no_loss_is_held(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    tripped(policy, book, old)
    p = policy(book=book, now=T0 + dt.timedelta(minutes=5))
    for unit in "abc":
        assert verdict(p, old, answer(*old), unit=unit).kind == "published"
    p.finish(3)
    assert book.breaker is None and book.holds == {}


def test_an_acceptance_frees_the_nights_accepted_once_and_no_more(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5)), r(D(2028, 1, 20), D(2028, 1, 22))]
    verdict(policy(book=book), old, answer(r(D(2028, 1, 20), D(2028, 1, 22))))
    book.accept(["u"], "ops", T0)
    p = policy(book=book, now=T0 + dt.timedelta(minutes=1))
    v = verdict(p, old, answer())  # the accepted loss, and a new one on the 20th
    assert v.kind == "held" and v.kept == [(D(2028, 1, 20), D(2028, 1, 22))]
    assert v.ranges == [r(D(2028, 1, 20), D(2028, 1, 22))]  # the accepted nights are freed
    assert book.holds["u"].accepted is None, "used once: a later loss of those nights is judged anew"
    p = policy(book=book, now=T0 + dt.timedelta(minutes=2))
    later = [r(D(2028, 1, 1), D(2028, 1, 5)), *v.ranges]  # (booked again since)
    assert verdict(p, later, answer()).kind == "held"


def test_an_accepted_loss_is_published_as_accepted(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    verdict(policy(book=book), old, answer())
    book.accept(None, "ops", T0)
    v = verdict(policy(book=book, now=T0 + dt.timedelta(minutes=1)), old, answer())
    assert v.kind == "accepted" and "accepted by ops" in v.message and v.ranges == [] and "u" not in book.holds


def test_a_booked_hold_is_never_confirmed_by_time_even_when_the_view_fails_later(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    verdict(policy(book=book), old, answer(), view(booked=old))
    later = policy(book=book, now=T0 + dt.timedelta(minutes=30))
    assert verdict(later, old, answer(), no_view).kind == "held" and book.holds["u"].booked


def test_a_view_that_shows_everything_free_counts_towards_the_breaker(policy, tmp_path):
    """A permission glitch can empty the reservations as well as the calendar: losses the
    view merely shows free are held by the breaker when many units have them at once."""
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    p = policy(book=book)
    for unit in "abcd":
        assert verdict(p, old, answer(), view(), unit=unit).kind == "pending"
    resolved = p.finish(fetched=4)
    assert {v.kind for v in resolved.values()} == {"held"} and book.breaker is not None
    p = policy(book=book, now=T0 + dt.timedelta(hours=1))  # the next runs: still held, no drain
    assert all(verdict(p, old, answer(), view(), unit=unit).kind == "held" for unit in "abcd")


def test_the_change_feed_frees_nights_even_under_the_breaker(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    tripped(policy, book, old)
    p = policy(book=book, evidence={"a": [(D(2028, 1, 1), D(2028, 1, 5))]}, now=T0 + dt.timedelta(minutes=5))
    assert verdict(p, old, answer(), unit="a").kind == "explained"


def test_continuing_holds_do_not_trip_the_breaker_again(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    p = policy(book=book)
    for unit in "ab":
        verdict(p, old, answer(), unit=unit)
    p.finish(10)
    p = policy(book=book, now=T0 + dt.timedelta(minutes=5))  # an incremental tick: only they are fetched
    for unit in "ab":
        verdict(p, old, answer(), unit=unit)
    verdict(p, old, answer(), unit="c")  # one new loss
    p.finish(3)
    assert book.breaker is None


def test_uncovered_future_nights_are_blocked_and_never_count_as_lost(policy):
    covered = [(WINDOW.start, TODAY + dt.timedelta(days=3))]
    p = policy()
    a = p.assess("u", [r(TODAY + dt.timedelta(days=10), TODAY + dt.timedelta(days=12))], answer(covered=covered))
    assert a.lost == [] and a.uncovered == [(TODAY + dt.timedelta(days=3), WINDOW.end)]
    v = p.decide(a)
    assert v.kind == "published" and v.ranges == [r(TODAY + dt.timedelta(days=3), WINDOW.end)]


def test_hold_state_survives_a_round_trip_and_bad_parts_are_dropped(tmp_path, caplog):
    folder = tmp_path / "accounts" / "acct"  # state_dir/accounts/<account>/policy.json
    book = HoldBook(folder / "policy.json")
    p = PublishPolicy("acct", FeedSettings(), book, TODAY, WINDOW, T0)
    verdict(p, [r(D(2028, 1, 1), D(2028, 1, 5))], answer(), view(booked=[r(D(2028, 1, 1), D(2028, 1, 2))]))
    book.accept(None, "ops", T0)
    book.save()
    again = HoldBook.load(folder)
    assert again.holds == book.holds and again.listing_accepted == book.listing_accepted
    path = folder / "policy.json"  # names the document "accounts/acct/policy" of tmp_path/state.db
    text = json.dumps(read_state(path))
    assert '"booked": true' in text
    write_state(path, json.loads(text.replace('"booked": true', '"booked": "yes"')))
    assert HoldBook.load(folder).holds == {} and "ignored 1 wrong-shaped part(s)" in caplog.text
    for bad in ([], {"version": 2, "units": {}}, "{", {"version": 1, "units": []}):
        book.save()
        assert HoldBook.load(folder).holds == book.holds != {}
        if bad == "{":  # a row that is not JSON: the document is absent
            with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as con, con:
                con.execute("DELETE FROM documents WHERE key = 'accounts/acct/policy'")
                con.execute("INSERT INTO documents (key, part, body) VALUES ('accounts/acct/policy', '[]', '{')")
        else:
            write_state(path, bad)
        assert HoldBook.load(folder).holds == {}


def test_what_a_held_feed_gained_from_a_wrong_answer_goes_again_when_the_view_shows_it_free(policy, tmp_path):
    """A shifted calendar for every unit: the breaker holds the old nights and the feeds
    gain the shifted ones. When Escapia is right again, the shifted nights (which the view
    shows free) go, the old ones stay, and the breaker releases itself: no accept needed."""
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old, moved = [r(D(2028, 1, 1), D(2028, 1, 5))], [r(D(2028, 1, 31), D(2028, 2, 4))]
    p = policy(book=book)
    published = {}
    for unit in "abc":
        v = verdict(p, old, answer(*moved), view(booked=old), unit=unit)
        published[unit] = v.ranges
    p.finish(3)
    assert book.breaker is not None and all(sorted(v) == sorted(old + moved) for v in published.values())
    p = policy(book=book, now=T0 + dt.timedelta(minutes=5))
    for unit in "abc":
        v = verdict(p, published[unit], answer(*old), view(booked=old), unit=unit)
        assert v.kind == "explained" and v.ranges == old
    p.finish(3)
    assert book.breaker is None and book.holds == {}


def test_a_booking_known_before_the_hold_still_needs_more_than_a_view(policy, tmp_path):
    book = HoldBook(tmp_path / "accounts" / "acct" / "policy.json")
    old = [r(D(2028, 1, 1), D(2028, 1, 5))]
    p = policy(book=book)
    for unit in "abc":
        verdict(p, old, answer(), view(booked=old), unit=unit)
    p.finish(3)
    p = policy(book=book, now=T0 + dt.timedelta(minutes=5))  # now the view empties too
    assert verdict(p, old, answer(), view(), unit="a").kind == "held"
