"""EscapianetSource against a recorded-looking EscapiaNET SOAP service served by ``responses``.

Answers follow /work/shared/escapia/API-NOTES.md (EscapiaNET section): SOAP 1.1 envelopes
holding ``EVRN_<Op>RS`` in the EVRN namespace. The requests the client sends are parsed
back with ElementTree and checked element by element. Waits are injected with ``sleep=``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import xml.etree.ElementTree as ET  # noqa: S405 - parses the requests our own code built
from xml.sax.saxutils import quoteattr

import pytest
import requests
import responses

from escapia_ical.config import EscapianetAccount, HttpPolicy
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.escapianet import EscapianetSource
from escapia_ical.sources.escapianet_decode import DailyDecoder, parse_answer
from escapia_ical.sources.http import TransientAnswer

BASE = "https://api.escapia.test"
SERVICE_URL = f"{BASE}/EVRNService.svc"
CONTENT_URL = f"{BASE}/EVRNContentService.svc"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN = "http://www.escapia.com/EVRN/2007/02"
PASSWORD = "pw-s3cret"
DECODE_LOGGER = "escapia_ical.sources.escapianet_decode"

WINDOW = FeedWindow(dt.date(2026, 4, 24), dt.date(2028, 4, 30))
D = dt.date


def q(name: str) -> str:
    return f"{{{EVRN}}}{name}"


# -- answers ------------------------------------------------------------------------------


def envelope(inner: str) -> bytes:
    """A SOAP 1.1 envelope as the WCF service writes it."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f"<s:Body>{inner}</s:Body></s:Envelope>"
    ).encode()


def rs(operation: str, payload: str = "", *, success: bool = True) -> bytes:
    """An ``EVRN_<operation>RS`` answer holding ``payload``."""
    ok = "<Success/>" if success else ""
    return envelope(
        f'<EVRN_{operation}RS xmlns="{EVRN}" TimeStamp="2026-05-01T08:00:00" Version="1.030">'
        f"{ok}{payload}</EVRN_{operation}RS>"
    )


def error_rs(operation: str, *, type_: str, code: str, text: str = "Something went wrong") -> bytes:
    return rs(operation, f'<Errors><Error Type="{type_}" Code="{code}" ShortText="short">{text}</Error></Errors>',
              success=False)


def fault(faultstring: str = "Object reference not set to an instance of an object.") -> bytes:
    return envelope(
        f'<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/'
        f'dispatcher">a:InternalServiceFault</faultcode><faultstring xml:lang="en-US">{faultstring}'
        "</faultstring></s:Fault>"
    )


def segment(start: str | None, daily: str | None, end: str | None = None, *, stay_rules: bool = True) -> str:
    attrs = ""
    if start is not None:
        attrs += f" StartDate={quoteattr(start)}"
    if end is not None:
        attrs += f" EndDate={quoteattr(end)}"
    inner = f"<DailyAvailability>{daily}</DailyAvailability>" if daily is not None else ""
    if stay_rules:
        inner += '<StayRequirements><StayRequirement MinLOS="3"/></StayRequirements>'
    return f"<UnitCalendarAvailSegment{attrs}>{inner}</UnitCalendarAvailSegment>"


def units_rs(*units: tuple[str, str]) -> bytes:
    """An EVRN_UnitSearchRS listing (code, name) units."""
    inner = "".join(f"<Unit UnitCode={quoteattr(code)} UnitName={quoteattr(name)} "
                    f'UnitHeadline={quoteattr(name + " headline")}><Address City="Kihei"/></Unit>' for code, name in units)
    return rs("UnitSearch", f"<Units>{inner}</Units>" if units else "<Units/>")


def calendar_rs(code: str | None, *segments: str) -> bytes:
    """An EVRN_UnitCalendarAvailRS for one unit."""
    attr = f" UnitCode={quoteattr(code)}" if code is not None else ""
    return rs("UnitCalendarAvail", f"<UnitCalendarAvailSegments{attr}>{''.join(segments)}"
                                   "</UnitCalendarAvailSegments>")


def batch_rs(*calendars: tuple[str, str, list[str]]) -> bytes:
    """An EVRN_UnitCalendarAvailBatchRS: (code, name, segments) per unit."""
    inner = "".join(f"<UnitCalendarAvail UnitCode={quoteattr(code)} UnitName={quoteattr(name)} "
                    f'LastUpdated="2026-04-30T22:14:05">{"".join(segments)}</UnitCalendarAvail>'
                    for code, name, segments in calendars)
    return rs("UnitCalendarAvailBatch", f"<UnitCalendarAvails>{inner}</UnitCalendarAvails>")


def make_account(**overrides) -> EscapianetAccount:
    fields = dict(name="maui", username="user1", password=PASSWORD, base_url=BASE,
                  property_manager_code="1911", calendar_mode="per_unit",
                  http=HttpPolicy(retry_attempts=3, retry_initial_wait=0.5, retry_max_wait=30))
    return EscapianetAccount(**{**fields, **overrides})


@pytest.fixture
def make_source(waits):
    def make(account: EscapianetAccount | None = None, **overrides) -> EscapianetSource:
        return EscapianetSource(account or make_account(**overrides), sleep=waits.append)

    return make


def add(rsps, url: str, body: bytes, status: int = 200) -> None:
    rsps.add(responses.POST, url, body=body, status=status, content_type="text/xml; charset=utf-8")


# -- reading the requests back --------------------------------------------------------------


def sent_soap(call, url: str, operation: str) -> ET.Element:
    """Check a sent request is a SOAP POST of ``operation`` to ``url``; return its RQ element."""
    assert call.request.method == "POST"
    assert call.request.url == url
    assert call.request.headers["SOAPAction"] == operation
    assert call.request.headers["Content-Type"] == "text/xml; charset=utf-8"
    request = request_of(call, operation)
    assert request.get("Version")
    return request


def request_of(call, operation: str) -> ET.Element:
    """Return the ``EVRN_<operation>RQ`` element of a sent request, checking the envelope."""
    return request_in(call.request.body, operation)


def request_in(body: bytes, operation: str) -> ET.Element:
    root = ET.fromstring(body)  # noqa: S314 - our own request
    assert root.tag == f"{{{SOAP}}}Envelope"
    (body,) = [child for child in root if child.tag == f"{{{SOAP}}}Body"]
    (request,) = list(body)
    assert request.tag == q(f"EVRN_{operation}RQ")
    return request


def requestor_of(request: ET.Element) -> ET.Element:
    requestor = request.find(f"{q('POS')}/{q('Source')}/{q('RequestorID')}")
    assert requestor is not None
    return requestor


UNIT = Unit(id="1911-89479", name="Kihei Surfside 101", code="1911-89479")


def decode(rsps, make_source, *segments: str, **account) -> list[BlockedRange]:
    """Serve one unit's batch calendar made of ``segments``; return its ranges."""
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, list(segments))))
    return list(make_source(calendar_mode="batch", **account).calendar(UNIT, WINDOW).ranges)


def spans(ranges: list[BlockedRange]) -> list[tuple[dt.date, dt.date]]:
    return [(r.start, r.end) for r in ranges]


# == 1. requests ===========================================================================


def test_unit_search_request_is_a_soap_envelope_with_credentials(rsps, make_source):
    add(rsps, SERVICE_URL, units_rs(("1911-89479", "Kihei Surfside 101")))

    units = make_source().list_units()

    assert units == [Unit(id="1911-89479", name="Kihei Surfside 101", code="1911-89479")]
    (call,) = rsps.calls
    request = sent_soap(call, SERVICE_URL, "UnitSearch")
    requestor = requestor_of(request)
    assert requestor.get("ID") == "user1"
    assert requestor.get("MessagePassword") == PASSWORD


@pytest.mark.parametrize(("window", "start", "end"), [
    (WINDOW, "04/24/2026", "04/29/2028"),
    (FeedWindow(D(2026, 12, 25), D(2027, 1, 1)), "12/25/2026", "12/31/2026"),
    (FeedWindow(D(2028, 2, 1), D(2028, 3, 1)), "02/01/2028", "02/29/2028"),
])
def test_unit_calendar_request_names_the_unit_and_the_nights_of_the_window(rsps, make_source, window,
                                                                            start, end):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "AUA")))

    list(make_source().calendar(UNIT, window).ranges)

    (call,) = rsps.calls
    assert call.request.url == SERVICE_URL
    assert call.request.headers["SOAPAction"] == "UnitCalendarAvail"
    assert call.request.headers["Content-Type"] == "text/xml; charset=utf-8"
    request = request_of(call, "UnitCalendarAvail")
    assert request.get("Version")
    assert requestor_of(request).get("ID") == "user1"
    assert requestor_of(request).get("MessagePassword") == PASSWORD
    assert request.find(q("UnitRef")).get("UnitCode") == UNIT.id
    date_range = request.find(q("CalendarDateRange"))
    assert (date_range.get("Start"), date_range.get("End")) == (start, end)


def test_batch_request_goes_to_the_content_service_with_the_property_manager_code(rsps, make_source):
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "AUA")])))

    list(make_source(calendar_mode="batch").calendar(UNIT, WINDOW).ranges)

    (call,) = rsps.calls
    request = sent_soap(call, CONTENT_URL, "UnitCalendarAvailBatch")
    assert requestor_of(request).get("ID") == "user1"
    assert requestor_of(request).get("MessagePassword") == PASSWORD
    (wanted,) = request.findall(f"{q('CalenadAvails')}/{q('CalendarAvail')}")
    assert wanted.get("PropertyManagerCode") == "1911"


def test_batch_request_omits_property_manager_code_when_not_configured(rsps, make_source):
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "AUA")])))

    list(make_source(calendar_mode="batch", property_manager_code=None).calendar(UNIT, WINDOW).ranges)

    request = request_of(rsps.calls[0], "UnitCalendarAvailBatch")
    (wanted,) = request.findall(f"{q('CalenadAvails')}/{q('CalendarAvail')}")
    assert "PropertyManagerCode" not in wanted.attrib


def test_xml_special_characters_are_escaped_and_round_trip(rsps, make_source):
    username, password, code = 'us<e&r"1>', 'p<&">w\'d\t \n', 'A<&">B'
    add(rsps, SERVICE_URL, units_rs((code, "Odd <&> unit")))
    add(rsps, SERVICE_URL, calendar_rs(code, segment("2026-05-01", "AUA")))
    source = make_source(username=username, password=password)

    (unit,) = source.list_units()
    ranges = list(source.calendar(unit, WINDOW).ranges)

    assert unit.id == code and unit.name == "Odd <&> unit"
    assert spans(ranges) == [(D(2026, 5, 2), D(2026, 5, 3))]
    search, calendar = (request_of(rsps.calls[0], "UnitSearch"),
                        request_of(rsps.calls[1], "UnitCalendarAvail"))
    for request in (search, calendar):
        assert requestor_of(request).get("ID") == username
        assert requestor_of(request).get("MessagePassword") == password
    assert calendar.find(q("UnitRef")).get("UnitCode") == code
    for call in rsps.calls:
        assert b"p<&" not in call.request.body and b"A<&" not in call.request.body


# == 2. request counts ======================================================================


def test_batch_mode_costs_two_requests_for_forty_units(rsps, make_source):
    codes = [f"1911-{n}" for n in range(100, 140)]
    add(rsps, SERVICE_URL, units_rs(*[(c, f"Unit {c}") for c in codes]))
    add(rsps, CONTENT_URL, batch_rs(*[(c, f"Unit {c}", [segment("2026-05-01", "AUUA")]) for c in codes]))
    source = make_source(calendar_mode="batch")

    units = source.list_units()
    all_ranges = [list(source.calendar(unit, WINDOW).ranges) for unit in units]

    assert [u.id for u in units] == codes
    assert all(spans(r) == [(D(2026, 5, 2), D(2026, 5, 4))] for r in all_ranges)
    assert len(rsps.calls) == 2
    assert dict(source.requests_by_operation) == {"UnitSearch": 1, "UnitCalendarAvailBatch": 1}


def test_per_unit_mode_costs_one_search_plus_one_calendar_per_unit(rsps, make_source):
    codes = [f"1911-{n}" for n in range(100, 140)]

    def answer(request):
        operation = request.headers["SOAPAction"]
        if operation == "UnitSearch":
            return 200, {}, units_rs(*[(c, f"Unit {c}") for c in codes])
        code = request_in(request.body, operation).find(q("UnitRef")).get("UnitCode")
        offset = codes.index(code) % 20  # each unit its own calendar
        return 200, {}, calendar_rs(code, segment("2026-05-01", "A" * offset + "UU" + "A"))

    rsps.add_callback(responses.POST, SERVICE_URL, callback=answer, content_type="text/xml; charset=utf-8")
    source = make_source()

    units = source.list_units()
    all_ranges = {unit.id: list(source.calendar(unit, WINDOW).ranges) for unit in units}

    assert [u.id for u in units] == codes
    for i, code in enumerate(codes):
        first = D(2026, 5, 1) + dt.timedelta(days=i % 20)
        assert spans(all_ranges[code]) == [(first, first + dt.timedelta(days=2))]
    assert len(rsps.calls) == 41
    assert dict(source.requests_by_operation) == {"UnitSearch": 1, "UnitCalendarAvail": 40}


# == 3. DailyAvailability decoding ===========================================================


@pytest.mark.parametrize(("start", "daily", "expected"), [
    ("2026-05-01", "AAUUUAA", [(D(2026, 5, 3), D(2026, 5, 6))]),
    ("2026-05-01", "UUUOUU", [(D(2026, 5, 1), D(2026, 5, 4)), (D(2026, 5, 4), D(2026, 5, 7))]),
    ("2026-05-01", "OUUI", [(D(2026, 5, 1), D(2026, 5, 4))]),
    ("2026-05-01", "UAA", [(D(2026, 5, 1), D(2026, 5, 2))]),
    ("2026-05-01", "AAUU", [(D(2026, 5, 3), D(2026, 5, 5))]),
    ("2026-05-01", "AAAA", []),
    ("2026-05-01", "IAIA", []),
    ("2026-05-01", "AOUIAOUUIOUA", [(D(2026, 5, 2), D(2026, 5, 4)), (D(2026, 5, 6), D(2026, 5, 9)),
                                    (D(2026, 5, 10), D(2026, 5, 12))]),
    ("2026-12-29", "AAUUUA", [(D(2026, 12, 31), D(2027, 1, 3))]),
    ("2028-02-27", "AUUA", [(D(2028, 2, 28), D(2028, 3, 1))]),
    ("2028-02-27", "UUUU", [(D(2028, 2, 27), D(2028, 3, 2))]),
    ("2027-02-27", "AUUA", [(D(2027, 2, 28), D(2027, 3, 2))]),
])
def test_daily_availability_decodes_to_half_open_ranges(rsps, make_source, start, daily, expected):
    assert spans(decode(rsps, make_source, segment(start, daily))) == expected


def test_every_segment_of_a_unit_is_decoded_from_its_own_start_date(rsps, make_source):
    ranges = decode(rsps, make_source,
                    segment("2026-05-01", "AUUA"),
                    segment("2026-12-30", "AUUUU", "2027-01-03"),
                    segment("2027-06-01", "OUIOU"))

    assert spans(ranges) == [
        (D(2026, 5, 2), D(2026, 5, 4)),
        (D(2026, 12, 31), D(2027, 1, 4)),
        (D(2027, 6, 1), D(2027, 6, 3)),
        (D(2027, 6, 4), D(2027, 6, 6)),
    ]


def test_per_unit_answer_is_decoded_like_the_batch(rsps, make_source):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "AUUOUA"), segment("2026-06-01", "UA")))

    ranges = list(make_source().calendar(UNIT, WINDOW).ranges)

    assert spans(ranges) == [(D(2026, 5, 2), D(2026, 5, 4)), (D(2026, 5, 4), D(2026, 5, 6)),
                             (D(2026, 6, 1), D(2026, 6, 2))]


@pytest.mark.parametrize(("daily", "expected"), [
    ("UUUOUU", [(D(2026, 5, 1), D(2026, 5, 4)), (D(2026, 5, 5), D(2026, 5, 7))]),
    ("AAOAA", []),
    ("OUUI", [(D(2026, 5, 2), D(2026, 5, 4))]),
])
def test_blocked_codes_u_only_makes_o_a_free_night(rsps, make_source, daily, expected):
    assert spans(decode(rsps, make_source, segment("2026-05-01", daily), blocked_codes="U")) == expected


def test_unknown_characters_are_blocked_and_reported_once_per_character(rsps, make_source, caplog):
    calendars = [(f"1911-{n}", f"Unit {n}", [segment("2026-05-01", "AXAhh?A")]) for n in range(5)]
    add(rsps, SERVICE_URL, units_rs(*[(code, name) for code, name, _ in calendars]))
    add(rsps, CONTENT_URL, batch_rs(*calendars))
    source = make_source(calendar_mode="batch")

    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        results = [list(source.calendar(unit, WINDOW).ranges) for unit in source.list_units()]

    for ranges in results:
        assert spans(ranges) == [(D(2026, 5, 2), D(2026, 5, 3)), (D(2026, 5, 4), D(2026, 5, 7))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    for char in "Xh?":
        assert sum(repr(char) in w for w in warnings) == 1
    assert all("maui" in w for w in warnings)


def test_unknown_characters_are_reported_again_by_a_new_source(rsps, make_source, caplog):
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "AXA")])))

    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        for _ in range(2):
            source = make_source(calendar_mode="batch")
            assert spans(list(source.calendar(UNIT, WINDOW).ranges)) == [(D(2026, 5, 2), D(2026, 5, 3))]
            list(source.calendar(UNIT, WINDOW).ranges)

    assert len([r for r in caplog.records if "'X'" in r.getMessage()]) == 2


def test_whitespace_inside_daily_availability_is_ignored(rsps, make_source, caplog):
    daily = "\n      AAU\n   UUA\tOU  \r\n    "
    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        ranges = decode(rsps, make_source, segment("2026-05-01", daily, "2026-05-08"))

    assert spans(ranges) == [(D(2026, 5, 3), D(2026, 5, 6)), (D(2026, 5, 7), D(2026, 5, 9))]
    assert caplog.records == []


@pytest.mark.parametrize("end", ["2026-05-04", "2026-05-05", "2026-05-05Z", "2026-05-04T00:00:00"])
def test_end_date_agreeing_with_the_string_is_silent(rsps, make_source, caplog, end):
    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        ranges = decode(rsps, make_source, segment("2026-05-01", "AUUA", end))

    assert spans(ranges) == [(D(2026, 5, 2), D(2026, 5, 4))]
    assert caplog.records == []


@pytest.mark.parametrize("end", ["2026-05-03", "2025-05-04"])  # before the string's end (a longer
def test_an_end_date_short_of_the_string_warns_once_and_trusts_the_string(rsps, make_source,  # string
                                                                          caplog, end):  # only tells more)
    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        ranges = decode(rsps, make_source, segment("2026-05-01", "AUUA", end), segment("2026-07-01", "UUA", end))

    assert spans(ranges) == [(D(2026, 5, 2), D(2026, 5, 4)), (D(2026, 7, 1), D(2026, 7, 3))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "EndDate" in warnings[0]


def test_decoder_can_be_used_on_its_own():
    holder = ET.fromstring(  # noqa: S314 - a literal
        f'<x xmlns="{EVRN}">{segment("2026-05-01", "AUUOU")}</x>')
    decoder = DailyDecoder("maui", "UO")
    assert spans(decoder.calendar(list(holder), "unit 'u'").ranges) == [(D(2026, 5, 2), D(2026, 5, 4)),
                                                                (D(2026, 5, 4), D(2026, 5, 6))]


# == 4. bad input ===========================================================================


def billion_laughs() -> bytes:
    """The classic entity bomb: ``&lol10;`` expands to 10**9 "lol"s."""
    names = ["lol"] + [f"lol{i}" for i in range(2, 11)]
    entities = ['<!ENTITY lol "lol">'] + [
        '<!ENTITY {} "{}">'.format(name, f"&{previous};" * 10) for previous, name in zip(names, names[1:], strict=False)
    ]
    doctype = "<!DOCTYPE lolz [\n " + "\n ".join(entities) + "\n]>\n"
    answer = units_rs(("&lol10;", "Bomb")).decode().replace("&amp;lol10;", "&lol10;")
    declaration, rest = answer.split("?>", 1)
    return f"{declaration}?>\n{doctype}{rest}".encode()


BILLION_LAUGHS = billion_laughs()


def test_malformed_xml_is_a_source_error_without_retry(rsps, make_source):
    add(rsps, SERVICE_URL, b'<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><EVRN_UnitSea')

    with pytest.raises(SourceError, match=r"UnitSearch: answer is not well-formed XML") as info:
        make_source().list_units()

    assert type(info.value) is SourceError
    assert len(rsps.calls) == 1


def test_non_xml_answer_is_a_source_error(rsps, make_source):
    add(rsps, SERVICE_URL, b"<html><body>Service Unavailable</body></html>")
    with pytest.raises(SourceError, match="no EVRN_UnitSearchRS element"):
        make_source().list_units()


def test_billion_laughs_is_refused_fast(rsps, make_source):
    assert b"<!ENTITY lol10" in BILLION_LAUGHS
    add(rsps, SERVICE_URL, BILLION_LAUGHS)

    began = time.perf_counter()
    with pytest.raises(SourceError, match="DTD") as info:
        make_source().list_units()

    assert time.perf_counter() - began < 2.0
    assert type(info.value) is SourceError
    assert "refused" in str(info.value)  # by us, not by expat's amplification limit
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("declaration", [
    '<!ENTITY pmc "1911">',  # harmless-looking, still a DTD
    '<!ENTITY pmc SYSTEM "file:///etc/hostname">',  # external entity (XXE)
    '<!ELEMENT Unit ANY>',  # a DTD without any entity
])
def test_any_dtd_is_refused(rsps, make_source, declaration):
    answer = units_rs(("1911-1", "One")).decode()
    declaration_line, rest = answer.split("?>", 1)
    add(rsps, SERVICE_URL, f"{declaration_line}?><!DOCTYPE s:Envelope [{declaration}]>{rest}".encode())

    with pytest.raises(SourceError, match=r"UnitSearch: answer holds a DTD .*refused"):
        make_source().list_units()


def test_billion_laughs_in_a_500_answer_is_still_a_source_error(rsps, make_source, waits):
    add(rsps, SERVICE_URL, BILLION_LAUGHS, status=500)

    with pytest.raises(SourceError, match="UnitSearch: HTTP 500"):
        make_source().list_units()

    assert len(rsps.calls) == 3


def test_soap_fault_in_http_500_is_retried_then_reports_its_faultstring(rsps, make_source, waits):
    add(rsps, SERVICE_URL, fault("Object reference not set to an\n   instance of an object."), status=500)

    with pytest.raises(SourceError) as info:
        make_source().list_units()

    message = str(info.value)
    assert "UnitSearch" in message and "HTTP 500" in message
    assert "SOAP fault: Object reference not set to an instance of an object." in message
    assert not isinstance(info.value, AuthError)
    assert len(rsps.calls) == 3
    assert len(waits) == 2


def test_soap_fault_in_http_500_then_success_recovers(rsps, make_source, waits):
    add(rsps, SERVICE_URL, fault(), status=500)
    add(rsps, SERVICE_URL, units_rs(("1911-1", "One")))

    assert [u.id for u in make_source().list_units()] == ["1911-1"]
    assert len(rsps.calls) == 2 and len(waits) == 1


def test_soap_fault_in_http_200_is_a_source_error_without_retry(rsps, make_source, waits):
    add(rsps, CONTENT_URL, fault("The message with Action '' cannot be processed"))

    with pytest.raises(SourceError, match=r"UnitCalendarAvailBatch: SOAP fault: The message with Action "):
        list(make_source(calendar_mode="batch").calendar(UNIT, WINDOW).ranges)

    assert len(rsps.calls) == 1 and waits == []


@pytest.mark.parametrize("type_", ["4", "6"])
def test_authentication_error_is_an_auth_error_without_retry(rsps, make_source, waits, type_):
    add(rsps, SERVICE_URL, error_rs("UnitSearch", type_=type_, code="497", text="Invalid credentials"))

    with pytest.raises(AuthError, match=rf"UnitSearch: Escapia error 497 \(type {type_}\): Invalid credentials"):
        make_source().list_units()

    assert len(rsps.calls) == 1 and waits == []


@pytest.mark.parametrize(("type_", "code"), [("12", "450"), ("3", "448"), ("12", "448")])
def test_transient_error_is_retried_and_the_next_answer_wins(rsps, make_source, waits, type_, code):
    add(rsps, SERVICE_URL, error_rs("UnitCalendarAvail", type_=type_, code=code, text="System error"))
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "AUA")))
    source = make_source()

    assert spans(list(source.calendar(UNIT, WINDOW).ranges)) == [(D(2026, 5, 2), D(2026, 5, 3))]
    assert len(rsps.calls) == 2 and len(waits) == 1
    assert source.requests_by_operation["UnitCalendarAvail"] == 2


@pytest.mark.parametrize(("type_", "code"), [("12", "450"), ("3", "448")])
def test_transient_error_fails_after_retry_attempts(rsps, make_source, waits, type_, code):
    add(rsps, SERVICE_URL, error_rs("UnitCalendarAvail", type_=type_, code=code, text="System error"))

    with pytest.raises(SourceError, match=rf"UnitCalendarAvail: Escapia error {code} \(type {type_}\): "
                                          "System error") as info:
        list(make_source().calendar(UNIT, WINDOW).ranges)

    assert isinstance(info.value, TransientAnswer)
    assert len(rsps.calls) == 3 and len(waits) == 2


def test_other_escapia_error_is_a_source_error_without_retry(rsps, make_source, waits):
    add(rsps, SERVICE_URL, error_rs("UnitCalendarAvail", type_="3", code="321", text="Unit not found"))

    with pytest.raises(SourceError, match=r"Escapia error 321 \(type 3\): Unit not found") as info:
        list(make_source().calendar(UNIT, WINDOW).ranges)

    assert not isinstance(info.value, AuthError | TransientAnswer)
    assert len(rsps.calls) == 1 and waits == []


def test_error_without_text_uses_short_text(rsps, make_source):
    add(rsps, SERVICE_URL, rs("UnitSearch", '<Errors><Error Type="3" ShortText="Bad criteria"/></Errors>',
                              success=False))
    with pytest.raises(SourceError, match=r"Escapia error \? \(type 3\): Bad criteria"):
        make_source().list_units()


@pytest.mark.parametrize(("bad", "match"), [
    (segment(None, "AUA"), "segment 0 StartDate: expected a date, got nothing"),
    (segment("soon", "AUA"), "segment 0 StartDate: not a date: 'soon'"),
    (segment("2026-02-30", "AUA"), "segment 0 StartDate: not a date"),
    (segment("2026-05-01", None), "segment 0: no DailyAvailability"),
])
def test_unusable_segment_is_a_source_error_naming_the_unit(rsps, make_source, bad, match):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, bad))
    with pytest.raises(SourceError, match=match) as info:
        list(make_source().calendar(UNIT, WINDOW).ranges)
    assert UNIT.id in str(info.value)


@pytest.mark.parametrize("daily", ["", "  \n  "])
def test_empty_daily_availability_is_a_source_error(rsps, make_source, daily):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", daily, "2026-12-31")))
    with pytest.raises(SourceError, match=r"unit '1911-89479': segment 0: .*DailyAvailability"):
        list(make_source().calendar(UNIT, WINDOW).ranges)


def test_unusable_segment_fails_only_its_unit_in_batch(rsps, make_source):
    add(rsps, SERVICE_URL, units_rs(("good", "Good"), ("bad", "Bad")))
    add(rsps, CONTENT_URL, batch_rs(("good", "Good", [segment("2026-05-01", "AUA")]),
                                    ("bad", "Bad", [segment("2026-05-01", "AUA"), segment(None, "UUU")])))
    source = make_source(calendar_mode="batch")
    good, bad = source.list_units()

    with pytest.raises(SourceError, match=r"unit 'bad': segment 1 StartDate"):
        list(source.calendar(bad, WINDOW).ranges)
    assert spans(list(source.calendar(good, WINDOW).ranges)) == [(D(2026, 5, 2), D(2026, 5, 3))]


def test_calendar_without_segments_is_a_source_error(rsps, make_source):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id))
    with pytest.raises(SourceError, match=r"unit '1911-89479': the calendar has no segments"):
        list(make_source().calendar(UNIT, WINDOW).ranges)


def test_calendar_of_another_unit_is_a_source_error(rsps, make_source):
    add(rsps, SERVICE_URL, calendar_rs("1911-00000", segment("2026-05-01", "AUA")))
    with pytest.raises(SourceError, match=r"no calendar for unit '1911-89479'"):
        list(make_source().calendar(UNIT, WINDOW).ranges)


@pytest.mark.parametrize("mode", ["per_unit", "batch"])
def test_no_units_is_an_empty_list(rsps, make_source, mode):
    add(rsps, SERVICE_URL, rs("UnitSearch", "<Units/>"))
    add(rsps, CONTENT_URL, rs("UnitCalendarAvailBatch", "<UnitCalendarAvails/>"))
    assert make_source(calendar_mode=mode).list_units() == []
    assert len(rsps.calls) == 1


def test_units_without_code_are_skipped_and_duplicates_kept_once(rsps, make_source, caplog):
    add(rsps, SERVICE_URL, rs("UnitSearch", '<Units><Unit UnitCode=" " UnitName="Nameless"/>'
                                            '<Unit UnitCode="1911-1" UnitHeadline="Headline only"/>'
                                            '<Unit UnitCode="1911-2" UnitName="Two"/>'
                                            '<Unit UnitCode="1911-1" UnitName="One again"/></Units>'))
    with caplog.at_level(logging.WARNING, logger=DECODE_LOGGER):
        units = make_source().list_units()

    assert [(u.id, u.code) for u in units] == [("1911-1", "1911-1"), ("1911-2", "1911-2")]
    assert units[1].name == "Two"
    assert any("without UnitCode" in r.getMessage() for r in caplog.records)


def test_batch_answer_missing_a_unit_fails_that_unit_only(rsps, make_source):
    add(rsps, CONTENT_URL, batch_rs(("1911-1", "One", [segment("2026-05-01", "UAA")]),
                                    ("1911-3", "Three", [segment("2026-05-01", "AAU")])))
    source = make_source(calendar_mode="batch")

    assert spans(list(source.calendar(Unit("1911-1", "One", "1911-1"), WINDOW).ranges)) == [(D(2026, 5, 1),
                                                                                       D(2026, 5, 2))]
    with pytest.raises(SourceError, match=r"UnitCalendarAvailBatch: no calendar for unit '1911-2'"):
        list(source.calendar(Unit("1911-2", "Two", "1911-2"), WINDOW).ranges)
    assert spans(list(source.calendar(Unit("1911-3", "Three", "1911-3"), WINDOW).ranges)) == [(D(2026, 5, 3),
                                                                                         D(2026, 5, 4))]
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("body", [
    envelope(""),
    rs("UnitCalendarAvail", "<Units/>"),
    envelope('<EVRN_UnitSearchRS xmlns="urn:not-evrn"><Success/><Units/></EVRN_UnitSearchRS>'),
    b'<?xml version="1.0"?><EVRN_UnitSearchRS xmlns="http://www.escapia.com/EVRN/2007/02"/>',
])
def test_answer_without_the_rs_element_is_a_source_error(rsps, make_source, body):
    add(rsps, SERVICE_URL, body)
    with pytest.raises(SourceError, match="UnitSearch: answer has no EVRN_UnitSearchRS element"):
        make_source().list_units()
    assert len(rsps.calls) == 1


def test_parse_answer_returns_the_rs_element():
    answer = parse_answer(units_rs(("1911-1", "One")), "UnitSearch")
    assert answer.tag == q("EVRN_UnitSearchRS")
    assert answer.find(f"{q('Units')}/{q('Unit')}").get("UnitCode") == "1911-1"


def _fail_connection(rsps):
    rsps.add(responses.POST, SERVICE_URL, body=requests.ConnectionError(f"refused {SERVICE_URL}"))


@pytest.mark.parametrize("serve", [
    lambda rsps: add(rsps, SERVICE_URL, b"<nope"),
    lambda rsps: add(rsps, SERVICE_URL, BILLION_LAUGHS),
    lambda rsps: add(rsps, SERVICE_URL, fault(), status=500),
    lambda rsps: add(rsps, SERVICE_URL, b"Internal error", status=500),
    lambda rsps: add(rsps, SERVICE_URL, b"Not found", status=404),
    lambda rsps: add(rsps, SERVICE_URL, fault()),
    lambda rsps: add(rsps, SERVICE_URL, error_rs("UnitSearch", type_="4", code="497")),
    lambda rsps: add(rsps, SERVICE_URL, error_rs("UnitSearch", type_="12", code="448")),
    lambda rsps: add(rsps, SERVICE_URL, error_rs("UnitSearch", type_="3", code="321")),
    lambda rsps: add(rsps, SERVICE_URL, envelope("")),
    _fail_connection,
], ids=["malformed", "dtd", "fault500", "plain500", "404", "fault200", "auth", "transient", "error",
        "no-rs", "connection"])
def test_error_messages_never_contain_the_password(rsps, make_source, caplog, serve):
    serve(rsps)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as info:
        make_source().list_units()

    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert all(PASSWORD not in str(arg) for arg in info.value.args)
    assert PASSWORD not in caplog.text
    assert info.value.__cause__ is None or PASSWORD not in str(info.value.__cause__)


def test_account_repr_hides_the_password():
    assert PASSWORD not in repr(make_account())


# == 5. dates ===============================================================================


@pytest.mark.parametrize("start", ["2026-11-16", "2026-11-16Z", "2026-11-16-07:00", "2026-11-16+10:00",
                                   "2026-11-16T00:00:00", "2026-11-16T00:00:00Z"])
def test_start_date_forms_that_name_a_day_are_accepted(rsps, make_source, start):
    assert spans(decode(rsps, make_source, segment(start, "AU"))) == [(D(2026, 11, 17), D(2026, 11, 18))]


@pytest.mark.parametrize("start", ["2026-11-16T05:00:00", "11/16/2026", "2026-11-16 00:00", "20261116", ""])
def test_start_date_forms_that_do_not_name_a_day_are_refused(rsps, make_source, start):
    with pytest.raises(SourceError, match="StartDate: not a date") as info:
        decode(rsps, make_source, segment(start, "AU"))
    assert UNIT.id in str(info.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-16", D(2026, 11, 16)),
    ("2026-11-16Z", D(2026, 11, 16)),
    ("2026-11-16-07:00", D(2026, 11, 16)),
    ("2026-11-16T00:00:00", D(2026, 11, 16)),
    ("2028-02-29", D(2028, 2, 29)),
])
def test_parse_api_date_accepts(value, expected):
    assert parse_api_date(value, "StartDate") == expected


@pytest.mark.parametrize("value", ["2026-11-16T05:00:00", "11/16/2026", "2027-02-29", None, 20261116])
def test_parse_api_date_refuses(value):
    with pytest.raises(SourceError, match="^StartDate: "):
        parse_api_date(value, "StartDate")


def test_a_listed_unit_missing_from_the_batch_fails_alone(rsps, make_source):
    add(rsps, SERVICE_URL, units_rs(("kept", "Kept"), ("gone", "Gone")))
    add(rsps, CONTENT_URL, batch_rs(("kept", "Kept", [segment("2026-05-01", "AUA")])))
    source = make_source(calendar_mode="batch")
    kept, gone = source.list_units()
    with pytest.raises(SourceError, match=r"UnitCalendarAvailBatch: no calendar for unit 'gone'"):
        list(source.calendar(gone, WINDOW).ranges)
    assert spans(list(source.calendar(kept, WINDOW).ranges)) == [(D(2026, 5, 2), D(2026, 5, 3))]


def test_stays_wholly_outside_the_window_are_dropped_quietly(rsps, make_source, caplog):
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "UA" + "A" * 500 + "UU")])))
    window = FeedWindow(D(2026, 5, 2), D(2026, 6, 1))
    with caplog.at_level(logging.WARNING):
        assert list(make_source(calendar_mode="batch").calendar(UNIT, window).ranges) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_batch_loss_is_explained_by_unitcalendaravail_for_that_unit(rsps, make_source):
    add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "A" * 30)])))
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-03", "AUUA", "2026-05-06")))
    source = make_source(calendar_mode="batch")
    asked = [(D(2026, 5, 3), D(2026, 5, 7)), (D(2026, 5, 20), D(2026, 5, 21))]
    view = source.explain(UNIT, asked)
    assert view.view == "UnitCalendarAvail"
    assert list(view.free) == [(D(2026, 5, 3), D(2026, 5, 4)), (D(2026, 5, 6), D(2026, 5, 7))]
    assert list(view.booked) == [(D(2026, 5, 4), D(2026, 5, 6))]  # 5-20 is not covered: neither
    request = sent_soap(rsps.calls[0], SERVICE_URL, "UnitCalendarAvail")
    dates = request.find(q("CalendarDateRange"))
    assert (dates.get("Start"), dates.get("End")) == ("05/03/2026", "05/20/2026")
    assert source.requests_by_operation == {"UnitCalendarAvail": 1}


def test_per_unit_losses_are_explained_by_one_batch_per_run(rsps, make_source):
    add(rsps, CONTENT_URL, batch_rs(("X", "X", [segment("2026-05-01", "OUAA")]),
                                    ("Y", "Y", [segment("2026-05-01", "AAAA")])))
    source = make_source(calendar_mode="per_unit")
    nights = [(D(2026, 5, 1), D(2026, 5, 5))]
    x, y = Unit("X", "X", "X"), Unit("Y", "Y", "Y")
    assert list(source.explain(x, nights).booked) == [(D(2026, 5, 1), D(2026, 5, 3))]
    assert list(source.explain(y, nights).free) == nights
    assert source.explain(y, nights).view == "UnitCalendarAvailBatch"
    assert source.requests_by_operation == {"UnitCalendarAvailBatch": 1}


def test_two_calendars_for_one_unit_in_a_batch_fail_that_unit_whatever_their_order(rsps, make_source):
    for second in ("A" * 10, "O" + "U" * 9):  # disagreeing, then identical
        rsps.reset()
        add(rsps, CONTENT_URL, batch_rs((UNIT.id, UNIT.name, [segment("2026-05-01", "O" + "U" * 9)]),
                                        ("other", "Other", [segment("2026-05-01", "AOA")]),
                                        (UNIT.id, UNIT.name, [segment("2026-05-01", second)])))
        source = make_source(calendar_mode="batch")
        with pytest.raises(SourceError, match=r"2 calendars for unit '1911-89479' in one answer; none is trusted"):
            source.calendar(UNIT, WINDOW)
        assert spans(source.calendar(Unit("other", "Other", "other"), WINDOW).ranges) == [(D(2026, 5, 2),
                                                                                            D(2026, 5, 3))]


def test_two_calendars_for_the_unit_in_a_per_unit_answer_fail_it(rsps, make_source):
    add(rsps, SERVICE_URL, rs("UnitCalendarAvail", "".join(
        f'<UnitCalendarAvailSegments UnitCode="{UNIT.id}">{segment("2026-05-01", s)}</UnitCalendarAvailSegments>'
        for s in ("OUA", "AAA"))))
    with pytest.raises(SourceError, match="2 calendars for unit '1911-89479' in one answer"):
        make_source().calendar(UNIT, WINDOW)


@pytest.mark.parametrize(("daily", "end"), [("OUA", "2026-05-10"), ("O", "2026-05-03")])
def test_a_string_shorter_than_its_stated_range_fails_the_unit(rsps, make_source, daily, end):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", daily, end)))
    with pytest.raises(SourceError, match=r"segment 0: the DailyAvailability string has \d+ days but "
                                          r"StartDate 2026-05-01 to EndDate .* the answer is cut short"):
        make_source().calendar(UNIT, WINDOW)


@pytest.mark.parametrize("end", ["2026-05-03", "2026-05-04", None])  # last night, the day after, absent
def test_the_calendar_covers_what_its_segments_span(rsps, make_source, end):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "OUA", end),
                                       segment("2026-06-01", "AA")))
    answer = make_source().calendar(UNIT, WINDOW)
    assert answer.covered == ((D(2026, 5, 1), D(2026, 5, 4)), (D(2026, 6, 1), D(2026, 6, 3)))
    assert spans(answer.ranges) == [(D(2026, 5, 1), D(2026, 5, 3))]


def test_overlapping_segments_must_agree(rsps, make_source):
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "OUAA"), segment("2026-05-03", "AAOU")))
    answer = make_source().calendar(UNIT, WINDOW)  # they agree on 05-03 and 05-04: free
    assert answer.covered == ((D(2026, 5, 1), D(2026, 5, 7)),)
    rsps.reset()
    add(rsps, SERVICE_URL, calendar_rs(UNIT.id, segment("2026-05-01", "OUAA"), segment("2026-05-02", "AAOU")))
    with pytest.raises(SourceError, match=r"segments 0 and 1 disagree about 2026-05-02..2026-05-04; "
                                          "neither is trusted"):
        make_source().calendar(UNIT, WINDOW)
