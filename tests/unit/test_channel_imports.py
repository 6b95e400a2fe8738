"""Channel imports: reading exports, telling echoes from bookings, the conflicts, the book,
the config, and when an export is due (imports/, config/imports.py)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from escapia_ical.config.imports import ChannelImport, ImportSettings, build_imports, import_problems
from escapia_ical.imports.book import ECHO_HOURS, FeedRecord, ImportBook
from escapia_ical.imports.conflicts import DOUBLE_BOOKING, UNSYNCED, find_conflicts
from escapia_ical.imports.parse import ChannelEvent, ChannelFeedError, channel_events
from escapia_ical.imports.watch import _due

D = dt.date
START, END = D(2026, 12, 1), D(2028, 12, 1)
UTC = ZoneInfo("UTC")


def ics(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n".encode()


def nights(body: bytes, zone=UTC, domains=("calendars.example.com",)) -> list[tuple]:
    return [(e.start, e.end, e.ours) for e in channel_events(body, START, END, zone, domains)]


def test_all_day_events_are_nights_as_they_are():
    body = ics("UID:a\r\nDTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261206",
               "UID:b\r\nDTSTART;VALUE=DATE:20261231\r\nDTEND;VALUE=DATE:20270101",  # year end, one night
               "UID:c\r\nDTSTART;VALUE=DATE:20280228\r\nDTEND;VALUE=DATE:20280301",  # over a leap day
               "UID:d\r\nDTSTART;VALUE=DATE:20261210")  # no DTEND: one day
    assert nights(body) == [(D(2026, 12, 3), D(2026, 12, 6), False), (D(2026, 12, 10), D(2026, 12, 11), False),
                            (D(2026, 12, 31), D(2027, 1, 1), False), (D(2028, 2, 28), D(2028, 3, 1), False)]


def test_timed_events_are_read_in_the_units_zone():
    body = ics("UID:a\r\nDTSTART:20261210T150000Z\r\nDTEND:20261212T110000Z",
               "UID:b\r\nDTSTART;TZID=Europe/Paris:20261220T000000\r\nDURATION:PT2H",  # same day: one night
               "UID:c\r\nDTSTART:20261224T160000\r\nDTEND:20261226T100000")  # floating: the unit's own time
    assert nights(body, ZoneInfo("Pacific/Kiritimati")) == [
        (D(2026, 12, 11), D(2026, 12, 13), False), (D(2026, 12, 20), D(2026, 12, 21), False),
        (D(2026, 12, 24), D(2026, 12, 26), False)]
    assert nights(body, ZoneInfo("America/Los_Angeles"))[0] == (D(2026, 12, 10), D(2026, 12, 12), False)


def test_recurrences_are_expanded_and_cancelled_events_book_nothing():
    body = ics("UID:r\r\nDTSTART;VALUE=DATE:20261207\r\nDTEND;VALUE=DATE:20261208\r\n"
               "RRULE:FREQ=WEEKLY;COUNT=3\r\nEXDATE;VALUE=DATE:20261214",
               "UID:x\r\nSTATUS:CANCELLED\r\nDTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261206")
    assert nights(body) == [(D(2026, 12, 7), D(2026, 12, 8), False), (D(2026, 12, 21), D(2026, 12, 22), False)]


def test_our_uids_are_echoes_and_no_uid_is_kept():
    body = ics("UID:0af3@Calendars.Example.com\r\nDTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261206",
               "UID:HM12345-guest@airbnb.com\r\nDTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261206")
    events = channel_events(body, START, END, UTC, ["calendars.example.com"])
    assert sorted(e.ours for e in events) == [False, True]
    assert all(len(e.key) == 16 and "HM12345" not in e.key for e in events)


def test_events_outside_the_window_are_left_out():
    body = ics("UID:a\r\nDTSTART;VALUE=DATE:20261120\r\nDTEND;VALUE=DATE:20261125",
               "UID:b\r\nDTSTART;VALUE=DATE:20261130\r\nDTEND;VALUE=DATE:20261202",  # over the start: kept whole
               "UID:c\r\nDTSTART;VALUE=DATE:20301203\r\nDTEND;VALUE=DATE:20301206")
    assert nights(body) == [(D(2026, 11, 30), D(2026, 12, 2), False)]


@pytest.mark.parametrize("body", [b"", b"<html>maintenance</html>", b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                                  ics("UID:a\r\nDTSTART;VALUE=DATE:2026-13-45")])
def test_what_is_not_a_calendar_is_refused_in_one_line(body):
    with pytest.raises(ChannelFeedError) as raised:
        channel_events(body, START, END, UTC, [])
    assert "\n" not in str(raised.value)


def span(a: int, b: int) -> tuple[D, D]:
    return START + dt.timedelta(days=a), START + dt.timedelta(days=b)


def event(a: int, b: int, ours: bool = False, block: bool = False) -> ChannelEvent:
    return ChannelEvent(*span(a, b), ours, block=block)


def found(events, escapia=(), echoes=(), today=0):
    return [(c.kind, c.nights) for c in find_conflicts("u", "airbnb", events, list(escapia), set(echoes),
                                                        START + dt.timedelta(days=today), END)]


def test_a_booking_on_free_nights_is_unsynced_and_the_same_dates_are_the_same_booking():
    assert found([event(3, 6)]) == [(UNSYNCED, (span(3, 6),))]
    assert found([event(3, 6)], escapia=[span(3, 6)]) == []
    assert found([event(3, 6)], escapia=[span(3, 5)]) == [(DOUBLE_BOOKING, (span(3, 5),)), (UNSYNCED, (span(5, 6),))]


def test_a_booking_over_another_stay_is_a_double_booking():
    assert found([event(3, 6)], escapia=[span(1, 4)]) == [(DOUBLE_BOOKING, (span(3, 4),)), (UNSYNCED, (span(4, 6),))]
    assert found([event(3, 6)], escapia=[span(1, 10)]) == [(DOUBLE_BOOKING, (span(3, 6),))]


def test_echoes_raise_nothing_however_the_channel_words_them():
    escapia = [span(3, 5), span(5, 7)]  # back to back
    assert found([event(3, 7)], escapia=escapia) == []  # merged by the channel
    assert found([event(20, 22, ours=True)], escapia=escapia) == []  # our UID
    assert found([event(10, 12)], escapia=escapia, echoes=[span(10, 12)]) == []  # published lately
    # A block within our nights (cut around the channel's own booking) is an echo; a booking is not.
    assert found([event(4, 6, block=True)], escapia=escapia) == []
    assert found([event(4, 6)], escapia=escapia) == [(DOUBLE_BOOKING, (span(4, 6),))]
    # A block reaching past our nights is judged as a booking (Booking.com words its
    # reservations "CLOSED - Not available"): a missed double booking costs more than a look.
    assert found([event(4, 9, block=True)], escapia=escapia) == [(DOUBLE_BOOKING, (span(4, 7),)),
                                                                 (UNSYNCED, (span(7, 9),))]
    # Where blocks are bookings (Booking.com), one inside our nights is a double booking;
    # only exactly our dates (or our merged runs) are echoes.
    booking = [(c.kind, c.nights) for c in find_conflicts("u", "booking", [event(4, 6, block=True)], escapia,
                                                          set(), START, END, blocks_are_bookings=True)]
    assert booking == [(DOUBLE_BOOKING, (span(4, 6),))]
    assert find_conflicts("u", "booking", [event(3, 7, block=True)], escapia, set(), START, END,
                          blocks_are_bookings=True) == []


def test_a_work_order_of_ours_is_not_another_stay_of_its_booking_but_other_stays_still_are():
    mine = event(3, 6)
    own = {mine: span(3, 7)}  # Escapia read our checkout-day end inclusively: one night more
    escapia = [span(3, 9)]  # our work order merged with a stay arriving on day 7
    assert [(c.kind, c.nights) for c in find_conflicts("u", "a", [mine], escapia, set(), START, END, own)] == []
    assert found([mine], escapia=escapia) == [(DOUBLE_BOOKING, (span(3, 6),))]  # without it: a false alarm
    overlapping = [span(3, 7), span(5, 8)]  # a stay sold over our booking's nights
    assert [(c.kind, c.nights) for c in find_conflicts("u", "a", [event(3, 8)], overlapping, set(), START, END,
                                                       {event(3, 8): span(3, 7)})] == [
        (DOUBLE_BOOKING, (span(7, 8),))]


def test_blocks_are_told_from_bookings_by_their_wording_which_is_not_kept():
    body = ics("UID:a\r\nSUMMARY:Airbnb (Not available)\r\nDTSTART;VALUE=DATE:20261203\r\nDTEND;VALUE=DATE:20261206",
               "UID:b\r\nSUMMARY:CLOSED - Not available\r\nDTSTART;VALUE=DATE:20261210\r\nDTEND;VALUE=DATE:20261211",
               "UID:c\r\nSUMMARY:Reserved - Jane Doe\r\nDTSTART;VALUE=DATE:20261220\r\nDTEND;VALUE=DATE:20261221")
    events = channel_events(body, START, END, UTC, [])
    assert [e.block for e in events] == [True, True, False]
    assert "Jane" not in repr(events)


def test_past_nights_are_not_conflicts():
    assert found([event(3, 6)], today=5) == [(UNSYNCED, (span(5, 6),))]
    assert found([event(3, 6)], today=6) == []


def test_the_book_keeps_released_blocks_for_echoes_only_for_a_while(tmp_path):
    book = ImportBook(tmp_path / "imports.json")
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    assert book.note_published("u", [span(3, 6)], now) == set()  # shown now: not an echo's, a range's
    assert book.note_published("u", [], now + dt.timedelta(hours=1)) == {span(3, 6)}
    assert book.note_published("u", [], now + dt.timedelta(hours=ECHO_HOURS + 2)) == set()


def test_the_book_round_trips_and_drops_what_is_wrong_shaped(tmp_path, caplog):
    from escapia_ical.state import read_state, write_state

    tmp_path = tmp_path / "state" / "accounts" / "a"
    tmp_path.mkdir(parents=True)
    book = ImportBook(tmp_path / "imports.json")
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    book.feeds["u airbnb"] = FeedRecord(now, '"e"', None, [event(3, 6), event(8, 9, ours=True)])
    book.conflicts["u|airbnb|unsynced|x"] = {"unit": "u", "since": now.isoformat()}
    book.save()
    again = ImportBook.load(tmp_path)
    assert again.feeds == book.feeds and again.conflicts == book.conflicts
    data = read_state(tmp_path / "imports.json")
    data["feeds"]["v vrbo"] = {"events": [["2026-12-05", "2026-12-01", "", 0, 0]]}  # inverted
    data["conflicts"]["y"] = {"since": "yesterday"}
    write_state(tmp_path / "imports.json", data)
    again = ImportBook.load(tmp_path)
    assert set(again.feeds) == {"u airbnb"} and set(again.conflicts) == {"u|airbnb|unsynced|x"}
    assert "feeds['v vrbo'] ignored; conflicts['y'] ignored" in caplog.text


def settings(every=15.0) -> ImportSettings:
    return ImportSettings((ChannelImport("u", "airbnb", "https://x.example/a.ics"),), every)


def test_an_export_is_due_once_per_period_at_its_own_point_of_it():
    feed = settings().feeds[0]
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert _due(None, feed, start, settings())
    ticks = [start + dt.timedelta(minutes=5 * i) for i in range(1, 37)]  # 3 hours of 5-minute ticks
    fetched, fetches = start, 0
    for tick in ticks:
        if _due(FeedRecord(fetched), feed, tick, settings()):
            fetched, fetches = tick, fetches + 1
    assert fetches == 12  # every 15 minutes, never twice in a period
    assert _due(FeedRecord(start, error="HTTP 500"), feed, start + dt.timedelta(minutes=5), settings())


def test_exports_spread_over_the_ticks():
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    feeds = [ChannelImport(f"u{i}", "airbnb", "https://x.example/a.ics") for i in range(300)]
    per_tick = [sum(_due(FeedRecord(start), f, start + dt.timedelta(minutes=m), settings()) for f in feeds)
                for m in (5, 10, 15)]
    assert all(n >= 60 for n in per_tick[:1]) and per_tick[-1] == 300  # not all at the first tick


def test_config_problems_are_named_where_they_are():
    problems = import_problems({"time_zone": "europe/lisbon", "units": {"u": [
        {"channel": "airbnb", "url": "https://a.example/x.ics"},
        {"channel": "airbnb", "url": "http://b.example/x.ics"},
        {"channel": "vrbo", "url": "https://user:pw@c.example/x.ics"},
        {"channel": "bk", "url": "http://127.0.0.1:8080/x.ics", "time_zone": "Mars/Olympus"}]}}, ("imports",))
    text = {(p.path, p.message) for p in problems}
    assert (("imports", "time_zone"), "unknown time zone 'europe/lisbon' (did you mean Europe/Lisbon?)") in text
    assert any(p.path == ("imports", "units", "u", 1, "channel") and "twice" in p.message for p in problems)
    assert any(p.path == ("imports", "units", "u", 1, "url") and "https" in p.message for p in problems)
    assert any(p.path == ("imports", "units", "u", 2, "url") and "password" in p.message for p in problems)
    assert any(p.path == ("imports", "units", "u", 3, "time_zone") for p in problems)
    assert len(problems) == 5


def test_the_settings_and_their_secrets():
    built = build_imports({"every_minutes": 10, "time_zone": "Europe/Lisbon", "units": {
        1020: [{"channel": "airbnb", "url": "https://a.example/x.ics?s=secret"},
               {"channel": "vrbo", "url": "https://b.example/y.ics", "time_zone": "UTC"}]}})
    assert built is not None and built.every_minutes == 10.0
    assert [(f.unit, f.channel, f.time_zone, f.host) for f in built.feeds] == [
        ("1020", "airbnb", "Europe/Lisbon", "a.example"), ("1020", "vrbo", "UTC", "b.example")]
    assert "secret" not in repr(built) and built.urls[0].endswith("s=secret")
    assert build_imports(None) is None


def test_recurring_occurrences_each_have_an_identity_of_their_own():
    from escapia_ical.imports.writeback import identities

    one, two = ChannelEvent(*span(1, 2), key="k"), ChannelEvent(*span(8, 9), key="k")
    alone = ChannelEvent(*span(3, 5), key="j")
    assert identities([one, two, alone]) == {f"k@{one.start}": one, f"k@{two.start}": two, "j": alone}


def test_save_work_order_sends_the_checkout_day_and_refuses_an_answer_for_another_unit():
    from escapia_ical.errors import SourceError
    from escapia_ical.sources.hsapi_work_orders import WorkOrdersForbidden, save_work_order
    from escapia_ical.sources.http import HttpStatusError

    sent = []

    def call(method, operation, json=None, **_):
        sent.append((method, operation, json))
        return {"nativePMSID": "77", "unit": {"nativePMSID": json["unit"]["nativePMSID"]},
                "workOrderRemovesUnitFromAvailability": True, "status": "Scheduled",
                "startDateWhenUnitIsRemovedFromAvailability": "2026-12-03T00:00:00",
                "endDateWhenUnitIsRemovedFromAvailability": "2026-12-06T00:00:00"}

    saved = save_work_order(call, "u1", D(2026, 12, 3), D(2026, 12, 6), "escapia-ical: x")
    assert saved.id == "77" and sent[0][:2] == ("PUT", "SaveWorkOrder")
    assert sent[0][2]["endDateWhenUnitIsRemovedFromAvailability"] == "2026-12-06"  # the checkout day
    assert "nativePMSID" not in sent[0][2]  # created, not updated
    with pytest.raises(SourceError, match="not 5 of u1"):
        save_work_order(call, "u1", D(2026, 12, 3), D(2026, 12, 6), "x", order_id="5")

    def forbidden(*args, **kwargs):
        raise HttpStatusError("SaveWorkOrder: HTTP 403", 403)

    with pytest.raises(WorkOrdersForbidden):
        save_work_order(forbidden, "u1", D(2026, 12, 3), D(2026, 12, 6), "x")


def test_midnight_times_are_dates_and_uid_hashes_are_keyed():
    body = ics("UID:a\r\nDTSTART:20261210T000000Z\r\nDTEND:20261213T000000Z")
    assert nights(body, ZoneInfo("America/Los_Angeles")) == [(D(2026, 12, 10), D(2026, 12, 13), False)]
    one = channel_events(body, START, END, UTC, [], b"secret-1")[0].key
    two = channel_events(body, START, END, UTC, [], b"secret-2")[0].key
    assert one != two and len(one) == 16


@pytest.mark.parametrize("rule", ["FREQ=MINUTELY", "FREQ=HOURLY;COUNT=5", "FREQ=DAILY;BYHOUR=1,2"])
def test_recurrences_finer_than_a_day_are_refused_before_expanding(rule):
    body = ics(f"UID:a\r\nDTSTART:20261210T150000Z\r\nDTEND:20261210T160000Z\r\nRRULE:{rule}")
    with pytest.raises(ChannelFeedError, match="finer than a day"):
        channel_events(body, START, END, UTC, [])


def test_too_many_recurring_events_are_refused():
    body = ics(*[f"UID:r{i}\r\nDTSTART;VALUE=DATE:20261201\r\nRRULE:FREQ=DAILY" for i in range(30)])
    with pytest.raises(ChannelFeedError, match="could make more than"):
        channel_events(body, START, END, UTC, [])


# -- write-back's plan (imports/writeback.py) ------------------------------------------

def _account(*feeds: ChannelImport, block: bool = True):
    from escapia_ical.config import HsapiAccount

    return HsapiAccount("a", "1", "id", "secret", imports=ImportSettings(tuple(feeds), 15.0, block_in_escapia=block))


NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
AIRBNB = ChannelImport("u", "airbnb", "https://a.example/x.ics")
BOOKING = ChannelImport("u", "booking", "https://b.example/x.ics", blocks_are_bookings=True)


def _book(tmp_path, **records: list[ChannelEvent]) -> ImportBook:
    book = ImportBook(tmp_path / "imports.json")
    for channel, events in records.items():
        book.feeds[f"u {channel}"] = FeedRecord(NOW, None, None, events)
    return book


def _unsynced(*events: ChannelEvent, channel: str = "airbnb") -> dict:
    from escapia_ical.imports.conflicts import Conflict

    return {str(i): Conflict("u", channel, UNSYNCED, e.start, e.end, ((e.start, e.end),)) for i, e in enumerate(events)}


def _kinds(plan) -> list[tuple[str, D]]:
    return [(a.kind, a.start) for a in plan]


def test_write_back_blocks_bookings_once_and_blocks_only_where_the_channel_books(tmp_path):
    from escapia_ical.imports.writeback import _plan

    stay, closed = ChannelEvent(*span(3, 6), key="a" * 16), ChannelEvent(*span(9, 10), key="b" * 16, block=True)
    book = _book(tmp_path, airbnb=[stay, closed], booking=[ChannelEvent(*span(3, 6), key="c" * 16, block=True),
                                                             ChannelEvent(*span(20, 22), key="d" * 16, block=True)])
    found = {**_unsynced(stay, closed), **{f"b{k}": v for k, v in _unsynced(
        ChannelEvent(*span(3, 6)), ChannelEvent(*span(20, 22)), channel="booking").items()}}
    plan = _plan(_account(AIRBNB, BOOKING), book, found, set(), NOW, dt.timedelta(minutes=15))
    # Airbnb's "Not available" is not written; Booking.com's blocks are bookings; the same
    # nights in two exports get one work order.
    assert [(a.channel, a.start) for a in plan] == [("airbnb", span(3, 6)[0]), ("booking", span(20, 22)[0])]


def test_write_back_closes_only_once_two_reads_agree_and_an_emptied_export_waits_a_day(tmp_path):
    from escapia_ical.imports.writeback import _plan

    other = ChannelEvent(*span(30, 31), key="o" * 16)
    book = _book(tmp_path, airbnb=[other])
    book.writes["u airbnb " + "a" * 16] = {"unit": "u", "channel": "airbnb", "order": "7", "start": str(span(3, 6)[0]),
                                           "end": str(span(3, 6)[1])}
    book.writes["u airbnb " + "o" * 16] = {"unit": "u", "channel": "airbnb", "order": "8", "start": str(other.start),
                                           "end": str(other.end)}
    account, confirm = _account(AIRBNB), dt.timedelta(minutes=15)
    assert _plan(account, book, {}, {"u airbnb"}, NOW, confirm) == []  # one read without it
    assert _plan(account, book, {}, set(), NOW + dt.timedelta(minutes=20), confirm) == []  # no new read
    assert _kinds(_plan(account, book, {}, {"u airbnb"}, NOW + dt.timedelta(minutes=20), confirm)) == [
        ("close", span(3, 6)[0])]
    book.feeds["u airbnb"] = FeedRecord(NOW, None, None, [])  # now it lists nothing at all
    later = NOW + dt.timedelta(hours=1)
    assert _plan(account, book, {}, {"u airbnb"}, later, confirm) == []  # even the confirmed one waits
    assert _plan(account, book, {}, {"u airbnb"}, later + dt.timedelta(hours=2), confirm) == []
    assert sorted(a.order for a in _plan(account, book, {}, {"u airbnb"}, later + dt.timedelta(hours=25),
                                         confirm)) == ["7", "8"]


def test_write_back_plans_moves_and_blocks_before_repairs_and_closings_and_gives_up_repairing(tmp_path):
    from escapia_ical.imports.writeback import MAX_REPAIRS, _plan

    moved, new, undone = (ChannelEvent(*span(3, 6), key="m" * 16), ChannelEvent(*span(10, 12), key="n" * 16),
                          ChannelEvent(*span(20, 22), key="u" * 16))
    book = _book(tmp_path, airbnb=[moved, new, undone])
    old = (NOW - dt.timedelta(hours=3)).isoformat()
    book.writes["u airbnb " + "m" * 16] = {"order": "1", "start": str(span(2, 6)[0]), "end": str(moved.end)}
    book.writes["u airbnb " + "u" * 16] = {"order": "2", "start": str(undone.start), "end": str(undone.end),
                                           "saved": old}
    book.writes["u airbnb " + "g" * 16] = {"order": "3", "start": str(span(40, 41)[0]), "end": str(span(40, 41)[1]),
                                           "missing_since": old, "missing_reads": 1}
    plan = _plan(_account(AIRBNB), book, _unsynced(new, undone), {"u airbnb"}, NOW, dt.timedelta(minutes=15))
    assert [a.kind for a in plan] == ["move", "create", "repair", "close"]
    book.writes["u airbnb " + "u" * 16]["repairs"] = MAX_REPAIRS
    plan = _plan(_account(AIRBNB), book, _unsynced(undone), {"u airbnb"}, NOW, dt.timedelta(minutes=15))
    assert "repair" not in [a.kind for a in plan] and book.writes["u airbnb " + "u" * 16]["given_up"]


def test_a_work_order_of_ours_is_taken_back_by_its_tag(tmp_path):
    from escapia_ical.imports.writeback import adopt
    from escapia_ical.sources.hsapi_work_orders import WorkOrder, parse_work_order, work_order_tag

    stay = ChannelEvent(*span(3, 6), key="a" * 16)
    book = _book(tmp_path, airbnb=[stay])
    order = parse_work_order({"nativePMSID": "9", "unit": {"nativePMSID": "u"}, "status": "Scheduled",
                              "workOrderRemovesUnitFromAvailability": True,
                              "description": f"escapia-ical: ... {work_order_tag('airbnb', stay.key)}",
                              "startDateWhenUnitIsRemovedFromAvailability": str(stay.start),
                              "endDateWhenUnitIsRemovedFromAvailability": str(stay.end)}, "x")
    someone = WorkOrder("10", "u", True, stay.start, stay.end, "Scheduled")  # no tag: a person's
    assert order.tag == f"airbnb {stay.key}"
    assert adopt(_account(AIRBNB), book, {"9": order, "10": someone}) == ["9"]
    assert book.writes["u airbnb " + stay.key]["order"] == "9"
    assert adopt(_account(AIRBNB), book, {"9": order}) == []  # once
