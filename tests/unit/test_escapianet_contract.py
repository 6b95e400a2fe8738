"""The EscapiaNET client against the published contract, as the sandbox now serves it: nested
batch answers and their Errors, holds, the date range asked, moredata, summaries, CachedData."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # noqa: S405 - parses the requests our own code built

import pytest

from escapia_ical.config import EscapianetAccount, HttpPolicy
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import FeedWindow, Unit
from escapia_ical.sandbox import SANDBOX_PMC_CODE, SANDBOX_SOAP_PASSWORD, SANDBOX_SOAP_USER, Sandbox
from escapia_ical.sources.escapianet import EscapianetSource
from escapia_ical.sources.escapianet_decode import parse_answer
from escapia_ical.sources.http import TransientAnswer

TODAY = dt.date(2026, 12, 30)
DAY = dt.timedelta(days=1)
WINDOW = FeedWindow(TODAY - 7 * DAY, TODAY + 730 * DAY)
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN = "http://www.escapia.com/EVRN/2007/02"
HOLDS_UNIT = "1020-102"  # seeded with Owner and Maintenance holds


@pytest.fixture
def sb():
    with Sandbox(today=TODAY) as sandbox:
        yield sandbox


def source(sb, mode: str = "batch", password: str = SANDBOX_SOAP_PASSWORD) -> EscapianetSource:
    account = EscapianetAccount(name="net", username=SANDBOX_SOAP_USER, password=password, base_url=sb.base_url,
                                property_manager_code=SANDBOX_PMC_CODE, calendar_mode=mode,
                                http=HttpPolicy(retry_attempts=1, retry_initial_wait=0, retry_max_wait=0))
    return EscapianetSource(account)


def nights(calendar) -> set[dt.date]:
    return {r.start + i * DAY for r in calendar.ranges for i in range((r.end - r.start).days)}


def request_of(sb, op: str) -> ET.Element:
    raw = [r["request"] for r in sb.soap_requests if r["op"] == op][-1]
    return ET.fromstring(raw).find(f"{{{SOAP}}}Body/{{{EVRN}}}EVRN_{op}RQ")  # noqa: S314 - our own request


def e(tag: str) -> str:
    return f"{{{EVRN}}}{tag}"


def nested(inner: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP}"><s:Body><EVRN_UnitCalendarAvailBatchRS xmlns="{EVRN}">'
            f'<EVRN_UnitCalendarAvailBatchRS Version="1.030">{inner}</EVRN_UnitCalendarAvailBatchRS>'
            "</EVRN_UnitCalendarAvailBatchRS></s:Body></s:Envelope>").encode()


def test_errors_are_read_at_every_level_and_the_payload_from_the_innermost_rs():
    with pytest.raises(AuthError, match="Escapia error 497 \\(type 4\\)"):
        parse_answer(nested('<Errors><Error Type="4" Code="497">Invalid RequestorID</Error></Errors>'),
                     "UnitCalendarAvailBatch")
    with pytest.raises(TransientAnswer):
        parse_answer(nested('<Errors><Error Type="12" Code="448">System error</Error></Errors>'),
                     "UnitCalendarAvailBatch")
    with pytest.raises(SourceError, match="error 320"):
        parse_answer(nested('<Errors><Error Type="3" Code="320">Invalid value</Error></Errors>'),
                     "UnitCalendarAvailBatch")
    inner = parse_answer(nested("<Success/><UnitCalendarAvails/>"), "UnitCalendarAvailBatch")
    assert inner.get("Version") == "1.030" and inner.find(e("UnitCalendarAvails")) is not None


def test_a_refused_password_on_the_batch_is_an_auth_error_not_a_missing_calendar(sb):
    net = source(sb, password="wrong")
    unit = Unit("1020-101", "x", "1020-101")
    with pytest.raises(AuthError, match="UnitCalendarAvailBatch: Escapia error 497"):
        net.calendar(unit, WINDOW)
    with pytest.raises(AuthError):  # remembered: every unit fails with it at once
        net.calendar(Unit("1020-105", "y", "1020-105"), WINDOW)
    assert sb.request_count("UnitCalendarAvailBatch") == 1


@pytest.mark.parametrize("mode", ["batch", "per_unit"])
def test_holds_are_in_both_modes(sb, mode):
    net = source(sb, mode)
    calendar = net.calendar(Unit(HOLDS_UNIT, "x", HOLDS_UNIT), WINDOW)
    truth = sb.blocked_nights(HOLDS_UNIT, WINDOW.start, WINDOW.end)  # holds included
    held = {dt.date.fromisoformat(r["start"]) for r in sb.reservations(HOLDS_UNIT) if r["holdType"] != "None"}
    assert held and held <= truth
    assert nights(calendar) == truth
    assert calendar.covered == ((WINDOW.start, WINDOW.end),)


def test_requests_follow_the_schema(sb):
    net = source(sb)
    units = net.list_units()
    assert units and not net.listing_truncated
    search = request_of(sb, "UnitSearch")
    assert search.find(e("Criteria")) is None  # no empty Criterion
    assert (search.get("SendRateDetails"), search.get("SendUnitSummary")) == ("false", "false")
    assert all(u.name != u.id for u in units)  # names still come
    net.calendar(units[0], WINDOW)
    batch = request_of(sb, "UnitCalendarAvailBatch")
    assert (batch.get("ShowHold"), batch.get("SummaryOnly")) == ("true", "false")
    dates = batch.find(f"{e('CalenadAvails')}/{e('CalendarAvail')}/{e('CalendarDateRange')}")
    assert (dates.get("Start"), dates.get("End")) == ("12/23/2026", "12/28/2028")  # End: the last night
    per_unit = source(sb, "per_unit")
    per_unit.calendar(units[0], WINDOW)
    rq = request_of(sb, "UnitCalendarAvail")
    assert [c.tag for c in rq][-2:] == [e("CalendarDateRange"), e("ShowHolds")]
    assert rq.findtext(e("ShowHolds")) == "true"


def test_a_batch_shorter_than_the_window_says_what_it_covers(sb):
    sb.calendar_max_days = 100
    calendar = source(sb).calendar(Unit("1020-101", "x", "1020-101"), WINDOW)
    assert calendar.covered == ((WINDOW.start, WINDOW.start + 100 * DAY),)


def test_moredata_is_reported(sb):
    sb.unit_list_cap = 3
    net = source(sb)
    assert len(net.list_units()) == 3 and net.listing_truncated


def test_summary_and_cached_answers(sb):
    sb.started_at -= dt.timedelta(hours=1)  # unchanged units: stamped an hour ago
    net = source(sb)
    after = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    seen, cached = net.changed_units(after)
    assert not cached and set(seen) <= set(sb.unit_ids())
    assert all(stamp.endswith("Z") for stamp in seen.values())
    assert request_of(sb, "UnitCalendarAvailBatch").get("SummaryOnly") == "true"
    sb.add_reservation("1020-105", TODAY + 300 * DAY, TODAY + 302 * DAY)
    sb.cached_batch = True
    again, cached = net.changed_units(after)
    assert cached and again == seen  # the previous answer, so the change is not in it
    sb.cached_batch = False
    fresh, cached = net.changed_units(after)
    assert not cached and "1020-105" in fresh and fresh["1020-105"] != seen.get("1020-105")
