"""Feed profiles: kinds, buffers, windows and wording (feeds/profiles.py, feeds/kinds.py)."""

from __future__ import annotations

import datetime as dt

import icalendar
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.config import FeedSettings
from escapia_ical.config.profiles import Profile
from escapia_ical.feeds import kinds, spans
from escapia_ical.feeds.profiles import UNKNOWN, nights, profile_blocks, profile_window
from escapia_ical.feeds.ranges import feed_blocks
from escapia_ical.feeds.render import events_digest, profile_events, render_events
from escapia_ical.model import BlockedRange, FeedWindow, Unit

D = dt.date
WIDE = FeedWindow(D(2020, 1, 1), D(2035, 1, 1))


def R(a: dt.date, b: dt.date) -> BlockedRange:
    return BlockedRange(a, b)


def shown(blocks):
    return [(b.shown.start, b.shown.end, b.kind) for b in blocks]


def test_labels_every_blocked_night_other_where_no_claim_covers_it():
    labels = kinds.label([(D(2026, 12, 1), D(2026, 12, 10))],
                         {"reservation": [(D(2026, 11, 28), D(2026, 12, 4))],
                          "maintenance": [(D(2026, 12, 3), D(2026, 12, 5)), (D(2027, 3, 1), D(2027, 3, 2))]})
    assert labels == {"reservation": [(D(2026, 12, 1), D(2026, 12, 4))],  # claims outside: not labelled
                      "maintenance": [(D(2026, 12, 3), D(2026, 12, 5))],
                      "other": [(D(2026, 12, 5), D(2026, 12, 10))]}
    assert kinds.decode(kinds.encode(labels)) == labels
    assert kinds.decode("x:2026-01-01/2026-01-02") is None and kinds.decode(7) is None
    assert {kinds.kind_of_hold_type(h) for h in kinds.HOLD_TYPE_KINDS} == set(kinds.KINDS) - {"other"}
    assert kinds.kind_of_hold_type("SomethingNew") == "hold" and kinds.kind_of_hold_type(None) == "reservation"


def test_include_picks_nights_of_the_kinds_asked_and_splits_blocks_by_kind():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 9))]  # one block: a stay, then the owner, back to back
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 5))], "owner": [(D(2026, 12, 5), D(2026, 12, 9))]}
    assert shown(profile_blocks(ranges, labels, [], Profile("c", include=("reservation",)), WIDE)) == [
        (D(2026, 12, 1), D(2026, 12, 5), "reservation")]
    assert shown(profile_blocks(ranges, labels, [], Profile("all"), WIDE)) == [
        (D(2026, 12, 1), D(2026, 12, 5), "reservation"), (D(2026, 12, 5), D(2026, 12, 9), "owner")]


def test_a_night_of_several_kinds_counts_as_the_first_the_profile_includes():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 4))]
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 4))], "maintenance": [(D(2026, 12, 2), D(2026, 12, 3))]}
    assert shown(profile_blocks(ranges, labels, [], Profile("m", include=("maintenance",)), WIDE)) == [
        (D(2026, 12, 2), D(2026, 12, 3), "maintenance")]
    assert shown(profile_blocks(ranges, labels, [], Profile("all"), WIDE)) == [
        (D(2026, 12, 1), D(2026, 12, 4), "reservation")]


def test_placeholder_nights_show_in_every_profile():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 3))]
    blocks = profile_blocks(ranges, {"other": [(D(2026, 12, 1), D(2026, 12, 3))]}, [(D(2026, 12, 2), D(2026, 12, 3))],
                            Profile("c", include=("reservation",)), WIDE)
    assert shown(blocks) == [(D(2026, 12, 2), D(2026, 12, 3), UNKNOWN)]


def test_buffers_around_back_to_back_stays_never_cover_a_night_twice():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 5)), R(D(2026, 12, 5), D(2026, 12, 8))]
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 8))]}
    profile = Profile("p", buffer_before_days=1, buffer_after_days=1)
    assert shown(profile_blocks(ranges, labels, [], profile, WIDE)) == [
        (D(2026, 11, 30), D(2026, 12, 5), "reservation"),  # the turnover day is the next stay's first night
        (D(2026, 12, 5), D(2026, 12, 9), "reservation")]


def test_a_buffer_reaching_the_next_stay_stops_there_and_the_gap_is_covered():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 5)), R(D(2026, 12, 8), D(2026, 12, 10))]
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 10))]}
    profile = Profile("p", buffer_before_days=2, buffer_after_days=2)
    assert shown(profile_blocks(ranges, labels, [], profile, WIDE)) == [
        (D(2026, 11, 29), D(2026, 12, 7), "reservation"), (D(2026, 12, 7), D(2026, 12, 12), "reservation")]
    far = Profile("p", buffer_after_days=5)  # longer than the gap: up to the next stay
    assert shown(profile_blocks(ranges, labels, [], far, WIDE))[0][:2] == (D(2026, 12, 1), D(2026, 12, 8))


def test_buffers_of_excluded_kinds_are_not_added():
    ranges = [R(D(2026, 12, 1), D(2026, 12, 3)), R(D(2026, 12, 10), D(2026, 12, 12))]
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 3))], "owner": [(D(2026, 12, 10), D(2026, 12, 12))]}
    cleaner = Profile("c", include=("reservation",), buffer_after_days=1)
    assert shown(profile_blocks(ranges, labels, [], cleaner, WIDE)) == [(D(2026, 12, 1), D(2026, 12, 4), "reservation")]


def test_year_end_leap_day_and_window_edges():
    labels = {"reservation": [(D(2027, 12, 30), D(2028, 1, 2)), (D(2028, 2, 28), D(2028, 3, 1))]}
    ranges = [R(D(2027, 12, 30), D(2028, 1, 2)), R(D(2028, 2, 28), D(2028, 3, 1))]
    profile = Profile("p", buffer_before_days=1, buffer_after_days=1)
    assert shown(profile_blocks(ranges, labels, [], profile, WIDE)) == [
        (D(2027, 12, 29), D(2028, 1, 3), "reservation"), (D(2028, 2, 27), D(2028, 3, 2), "reservation")]
    window = FeedWindow(D(2028, 1, 1), D(2028, 2, 29))  # cuts both events
    blocks = profile_blocks(ranges, labels, [], profile, window)
    assert shown(blocks) == [(D(2028, 1, 1), D(2028, 1, 3), "reservation"),
                             (D(2028, 2, 27), D(2028, 2, 29), "reservation")]
    assert blocks[0].origin == R(D(2027, 12, 29), D(2028, 1, 3))  # the UID does not move with the window
    # A stay that ended before the window still shows its buffer inside it.
    early = profile_blocks([R(D(2027, 12, 20), D(2028, 1, 1))], {"reservation": [(D(2027, 12, 20), D(2028, 1, 1))]},
                           [], Profile("p", buffer_after_days=2), window)
    assert shown(early) == [(D(2028, 1, 1), D(2028, 1, 3), "reservation")]


def test_profile_window_defaults_to_the_feeds_one():
    today = D(2026, 11, 30)
    assert profile_window(Profile("p"), today, 7, 730) == FeedWindow.around(today, 7, 730)
    assert profile_window(Profile("p", past_days=0, future_days=30), today, 7, 730) == FeedWindow(today, D(2026, 12, 30))


ranges_strategy = st.lists(st.tuples(st.integers(0, 120), st.integers(1, 9)), max_size=8)
label_strategy = st.lists(st.tuples(st.sampled_from(kinds.KINDS[:-1]), st.integers(0, 120), st.integers(1, 12)),
                          max_size=8)


@settings(max_examples=300, deadline=None)
@given(ranges_strategy, label_strategy, st.integers(0, 3), st.integers(0, 3), st.integers(0, 60),
       st.integers(61, 140))
def test_a_profile_of_every_kind_shows_the_default_feeds_nights_plus_buffers(raw, claims, before, after, lo, hi):
    base = D(2027, 12, 1)
    ranges = [R(base + dt.timedelta(days=s), base + dt.timedelta(days=s + n)) for s, n in raw]
    window = FeedWindow(base + dt.timedelta(days=lo), base + dt.timedelta(days=hi))
    default = feed_blocks(ranges, window)
    claimed: dict[str, list] = {}
    for kind, s, n in claims:
        claimed.setdefault(kind, []).append((base + dt.timedelta(days=s), base + dt.timedelta(days=s + n)))
    labels = kinds.label([(b.origin.start, b.origin.end) for b in default], claimed)
    profile = Profile("all", buffer_before_days=before, buffer_after_days=after)
    blocks = profile_blocks([b.origin for b in default], labels, [], profile, window)
    widened = [(b.origin.start - dt.timedelta(days=before), b.origin.end + dt.timedelta(days=after)) for b in default]
    assert nights(blocks) == spans.clip(widened, window.start, window.end)
    assert all(a.shown.end <= b.shown.start for a, b in zip(blocks, blocks[1:], strict=False))  # never overlap
    if not before and not after:
        assert nights(blocks) == spans.normalize((b.shown.start, b.shown.end) for b in default)


def test_events_render_with_summary_per_kind_and_dtend_as_the_last_night():
    settings_ = FeedSettings(summary="Reserved", uid_domain="cal.example.com")
    ranges = [R(D(2026, 12, 1), D(2026, 12, 2)), R(D(2026, 12, 5), D(2026, 12, 8))]
    labels = {"reservation": [(D(2026, 12, 1), D(2026, 12, 2))], "owner": [(D(2026, 12, 5), D(2026, 12, 8))]}
    profile = Profile("owners", summary=(("owner", "Owner stay"),), dtend="last_night")
    blocks = profile_blocks(ranges, labels, [], profile, WIDE)
    events = profile_events("acct", Unit("7", "Sea View"), blocks, profile, settings_)
    assert [(e[1], e[2], e[3]) for e in events] == [
        (D(2026, 12, 1), None, "Reserved"),  # one night: no DTEND (an all-day event lasts one day)
        (D(2026, 12, 5), D(2026, 12, 7), "Owner stay")]  # DTEND = the last night
    assert all(e[0].endswith("@cal.example.com") for e in events)
    calendar = icalendar.Calendar.from_ical(render_events(Unit("7", "Sea View"), events,
                                                          dt.datetime(2026, 11, 30, tzinfo=dt.UTC)))
    first, second = calendar.walk("VEVENT")
    assert "DTEND" not in first and second.decoded("dtend") == D(2026, 12, 7)
    checkout = profile_events("acct", Unit("7", "Sea View"), blocks, Profile("c"), settings_)
    assert [e[2] for e in checkout] == [D(2026, 12, 2), D(2026, 12, 8)]
    assert {e[0] for e in checkout}.isdisjoint(e[0] for e in events)  # each profile has its own UIDs
    assert events_digest(Unit("7", "Sea View"), events) != events_digest(Unit("7", "Sea View"), checkout)


def test_profile_uids_stay_the_same_while_the_window_edge_moves_through_a_stay():
    from escapia_ical.feeds.render import event_uid
    from escapia_ical.sync.kind_index import claims_of
    from escapia_ical.sync.profiles import unit_labels

    stay = R(D(2026, 11, 20), D(2026, 12, 10))  # a long stay in progress, crossing the window's start
    index = {"r1": ("u1", stay.start, stay.end, "reservation")}

    def uids_on(today: dt.date, profile: Profile) -> tuple[list[str], list[str]]:
        window = FeedWindow.around(today, 7, 730)
        blocks = feed_blocks([stay], window)
        labels = unit_labels(blocks, claims_of(index, None, {"u1"}).get("u1"))  # as the sync: unclipped
        events = profile_events("a", Unit("u1", "Unit"), profile_blocks([b.origin for b in blocks], labels, [],
                                                                        profile, window), profile, FeedSettings())
        return [event_uid("a", "u1", b, "x") for b in blocks], [uid for uid, *_ in events]

    for profile in (Profile("channel"), Profile("cleaner", include=("reservation",))):
        default_1, profile_1 = uids_on(D(2026, 11, 30), profile)
        default_2, profile_2 = uids_on(D(2026, 12, 1), profile)
        assert default_1 == default_2 and profile_1 == profile_2, profile.name
