"""The EscapiaNET (SOAP) side of the sandbox: envelope, auth, payload shapes, faults, ground truth."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import defusedxml
import pytest
import requests
from defusedxml import ElementTree as SafeET

from escapia_ical.sandbox import (
    SANDBOX_PMC_CODE,
    SANDBOX_SOAP_PASSWORD,
    SANDBOX_SOAP_USER,
    SOAP_FAULT_MODES,
    Sandbox,
)

TODAY = dt.date(2026, 12, 30)
DAY = dt.timedelta(days=1)
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN = "http://www.escapia.com/EVRN/2007/02"
SERVICE, CONTENT = "/EVRNService.svc", "/EVRNContentService.svc"


def e(tag: str) -> str:
    return f"{{{EVRN}}}{tag}"


@pytest.fixture
def sb():
    with Sandbox(today=TODAY, extra_units=3) as sandbox:
        yield sandbox


def request_xml(op: str, build=None, *, user=SANDBOX_SOAP_USER, password=SANDBOX_SOAP_PASSWORD,
                version: str | None = "1.030", root_tag: str | None = None, **attrs: str) -> bytes:
    envelope = ET.Element(f"{{{SOAP}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP}}}Body")
    root = ET.SubElement(body, e(root_tag or f"EVRN_{op}RQ"), attrs)
    if version is not None:
        root.set("Version", version)
    source = ET.SubElement(ET.SubElement(root, e("POS")), e("Source"))
    ET.SubElement(source, e("RequestorID"), {"ID": user, "MessagePassword": password})
    if build is not None:
        build(root)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def calendar(unit: str, start: str, end: str, holds: str | None = "true"):
    def build(root):
        ET.SubElement(root, e("UnitRef"), {"UnitCode": unit})
        ET.SubElement(root, e("CalendarDateRange"), {"Start": start, "End": end})
        if holds is not None:
            ET.SubElement(root, e("ShowHolds")).text = holds
    return build


def batch(dates: tuple[str, str] | None = None, **attrs: str):
    def build(root):
        item = ET.SubElement(ET.SubElement(root, e("CalenadAvails")), e("CalendarAvail"), attrs)
        if dates is not None:
            ET.SubElement(item, e("CalendarDateRange"), {"Start": dates[0], "End": dates[1]})
    return build


def post(sb, http, op, data, *, path=SERVICE, action=None, content_type="text/xml; charset=utf-8"):
    headers = {"Content-Type": content_type, "SOAPAction": op if action is None else action}
    return http.post(f"{sb.base_url}{path}", data=data, headers=headers)


def call(sb, http, op, build=None, *, path=SERVICE, **kw):
    return post(sb, http, op, request_xml(op, build, **kw), path=path)


def rs_of(r: requests.Response, op: str) -> ET.Element:
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert r.text.startswith('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s=')
    children = list(SafeET.fromstring(r.content).find(f"{{{SOAP}}}Body"))
    assert [c.tag for c in children] == [e(f"EVRN_{op}RS")]
    nested = r.request.path_url.endswith(CONTENT) and op == "UnitCalendarAvailBatch"
    if nested:  # the content service nests its answer in an outer RS
        children = list(children[0])
        assert [c.tag for c in children] == [e(f"EVRN_{op}RS")]
    assert children[0].get("Version") == "1.030"
    return children[0]


def ok(r: requests.Response, op: str) -> ET.Element:
    rs = rs_of(r, op)
    assert rs[0].tag == e("Success") and rs.find(e("Errors")) is None
    return rs


def error_of(r: requests.Response, op: str) -> tuple[str, str, str]:
    rs = rs_of(r, op)
    assert rs.find(e("Success")) is None and len(rs) == 1
    error = rs.find(f"{e('Errors')}/{e('Error')}")
    assert error.text
    return error.get("Type"), error.get("Code"), error.get("ShortText")


def fault_of(r: requests.Response, status: int) -> tuple[str, str]:
    assert r.status_code == status, r.text
    fault = SafeET.fromstring(r.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    return fault.findtext("faultcode"), fault.findtext("faultstring")


def decode(seg: ET.Element) -> tuple[dt.date, str, set[dt.date]]:
    start, text = dt.date.fromisoformat(seg.get("StartDate")), seg.findtext(e("DailyAvailability"))
    assert dt.date.fromisoformat(seg.get("EndDate")) == start + (len(text) - 1) * DAY
    assert set(text) <= set("AUOI")
    return start, text, {start + i * DAY for i, c in enumerate(text) if c in "UO"}


def stays_of(start: dt.date, text: str) -> list[tuple[dt.date, dt.date]]:
    """Blocked runs split at each O: ``[arrival, departure)`` as the client reads them."""
    return [(start + m.start() * DAY, start + m.end() * DAY) for m in re.finditer(r"O?U+|O", text)]


# -- envelope, auth, routing -----------------------------------------------------------------
def test_auth_and_version_errors(sb, http):
    for kw in ({"password": "wrong"}, {"user": "nobody"}, {"password": ""}):
        assert error_of(call(sb, http, "UnitSearch", **kw), "UnitSearch") == ("4", "497", "Authentication failed")
    r = call(sb, http, "UnitCalendarAvail", calendar("1020-101", "01/01/2027", "01/05/2027"), password="x")
    assert error_of(r, "UnitCalendarAvail")[:2] == ("4", "497")
    assert error_of(call(sb, http, "UnitSearch", version=None), "UnitSearch")[:2] == ("10", "321")
    assert "sandbox-password" not in str(sb.requests) and sb.requests[-1]["op"] == "UnitSearch"


def test_routing_content_type_and_faults(sb, http):
    data = request_xml("UnitSearch")
    for action in ("UnitSearch", '"UnitSearch"', "http://www.escapia.com/EVRN/2007/02/UnitSearch"):
        ok(post(sb, http, "UnitSearch", data, action=action), "UnitSearch")
    assert post(sb, http, "UnitSearch", data, content_type="application/json").status_code == 415
    assert fault_of(post(sb, http, "UnitSearch", data, action="Nope"), 500)[0] == "s:Client"
    assert fault_of(post(sb, http, "UnitSearch", data, path=CONTENT), 500)[0] == "s:Client"  # batch only
    assert fault_of(post(sb, http, "UnitSearch", b"<s:Envelope"), 500)[0] == "s:Client"
    wrong_root = request_xml("UnitSearch", root_tag="EVRN_UnitCalendarAvailRQ")
    assert fault_of(post(sb, http, "UnitSearch", wrong_root), 500)[0] == "s:Client"
    r = http.get(f"{sb.base_url}{SERVICE}")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert sb.request_count("UnitSearch") == 7 and sb.requests[-1]["op"] is None


def test_unit_search_lists_every_unit(sb, http):
    units = ok(call(sb, http, "UnitSearch", MaxResponses="100", ResponseType="PropertyList"), "UnitSearch")
    found = units.findall(f"{e('Units')}/{e('Unit')}")
    assert [u.get("UnitCode") for u in found] == sb.unit_ids() and len(found) == 11
    names = {u.get("UnitCode"): u.get("UnitName") for u in found}
    assert names == {uid: sb.unit(uid)["name"] for uid in sb.unit_ids()}
    assert names["ünit 9"] == "Ōhiʻa Hale" and names["1020/7B"] == "Café «Lanai» & Spa — Suite #4"
    assert names["1020-108"] == 'Pele\'s "Hideaway" \\ Loft; A/C'
    assert all(u.get("UnitHeadline") for u in found)
    capped = ok(call(sb, http, "UnitSearch", MaxResponses="3"), "UnitSearch").findall(f"{e('Units')}/{e('Unit')}")
    assert [u.get("UnitCode") for u in capped] == sb.unit_ids()[:3]
    assert error_of(call(sb, http, "UnitSearch", MaxResponses="many"), "UnitSearch")[:2] == ("3", "320")


# -- calendars -------------------------------------------------------------------------------
def test_unit_calendar_matches_truth(sb, http):
    start, last = TODAY - 7 * DAY, TODAY + 729 * DAY
    for unit in sb.unit_ids():
        r = call(sb, http, "UnitCalendarAvail", calendar(unit, start.strftime("%m/%d/%Y"), last.strftime("%m/%d/%Y")))
        segments = ok(r, "UnitCalendarAvail").find(e("UnitCalendarAvailSegments"))
        assert (segments.get("UnitCode"), segments.get("PropertyManagerCode")) == (unit, SANDBOX_PMC_CODE)
        assert segments.get("UnitName") == sb.unit(unit)["name"]
        (seg,) = segments.findall(e("UnitCalendarAvailSegment"))
        assert seg.find(e("StayRequirements")) is not None
        seg_start, text, nights = decode(seg)
        assert seg_start == start and len(text) == 737
        assert nights == sb.blocked_nights(unit, start, last + DAY), unit
    iso = call(sb, http, "UnitCalendarAvail", calendar("1020-105", "2027-01-01", "2027-01-01"))
    assert ok(iso, "UnitCalendarAvail").findtext(f".//{e('DailyAvailability')}") == "A"
    assert error_of(call(sb, http, "UnitCalendarAvail", calendar("x", "01/01/2027", "01/02/2027")),
                    "UnitCalendarAvail") == ("3", "392", "Invalid unit code")
    for bad in [("13/01/2027", "01/02/2027"), ("01/05/2027", "01/02/2027"), ("", "01/02/2027")]:
        r = call(sb, http, "UnitCalendarAvail", calendar("1020-101", *bad))
        assert error_of(r, "UnitCalendarAvail") == ("10", "321", "Required field missing"), bad
    assert error_of(call(sb, http, "UnitCalendarAvail"), "UnitCalendarAvail")[:2] == ("10", "321")
    assert sb.requests[-2]["unit"] == "1020-101" and sb.requests[-1]["unit"] is None


def test_back_to_back_stays_keep_their_boundaries(sb, http):
    start, last = TODAY - 30 * DAY, TODAY + 400 * DAY
    r = call(sb, http, "UnitCalendarAvail", calendar("1020-101", start.isoformat(), last.isoformat()))
    _, text, _ = decode(ok(r, "UnitCalendarAvail").find(f".//{e('UnitCalendarAvailSegment')}"))
    at = (TODAY + 4 * DAY - start).days  # (1, 4) then (4, 9)
    assert text[at - 1:at + 1] == "UO" and text[at - 3] == "O"
    assert text[(TODAY + 16 * DAY - start).days] == "I"  # (15, 16) departs, nothing arrives
    assert stays_of(start, text) == [(max(a, start), d) for a, d in sb.stays("1020-101") if d > start]


def test_batch_matches_truth_on_both_endpoints(sb, http):
    start, end = sb.batch_range()
    assert (start, end) == (TODAY, TODAY + 764 * DAY)
    for path, kw in [(CONTENT, {"PropertyManagerCode": "1020"}), (SERVICE, {})]:
        r = call(sb, http, "UnitCalendarAvailBatch", batch(**kw), path=path, SummaryOnly="false", ShowHold="true")
        avails = ok(r, "UnitCalendarAvailBatch").findall(f"{e('UnitCalendarAvails')}/{e('UnitCalendarAvail')}")
        assert [a.get("UnitCode") for a in avails] == sb.unit_ids()
        for avail in avails:
            unit = avail.get("UnitCode")
            assert avail.get("UnitName") == sb.unit(unit)["name"] and avail.get("PropertyManagerCode") == "1020"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", avail.get("LastUpdated"))
            (seg,) = avail.findall(e("UnitCalendarAvailSegment"))
            seg_start, text, nights = decode(seg)
            assert seg_start == start and len(text) == 764
            assert nights == sb.blocked_nights(unit, start, end), unit
    assert sb.request_count("UnitCalendarAvailBatch") == 2
    r = call(sb, http, "UnitCalendarAvailBatch", batch(PropertyManagerCode="1911"), path=CONTENT)
    assert error_of(r, "UnitCalendarAvailBatch") == ("6", "497", "Not authorized for property manager")
    r = call(sb, http, "UnitCalendarAvailBatch", SummaryOnly="true", path=CONTENT)  # no CalenadAvails
    assert error_of(r, "UnitCalendarAvailBatch")[:2] == ("10", "321")


def test_batch_updated_after(http):
    with Sandbox() as sb:  # real today: the seeded changes are stamped yesterday
        def units_after(stamp: str) -> list[str]:
            r = call(sb, http, "UnitCalendarAvailBatch", batch(UpdatedAfter=stamp), path=CONTENT)
            return [a.get("UnitCode") for a in ok(r, "UnitCalendarAvailBatch").iter(e("UnitCalendarAvail"))]
        seeded = max(c.time for c in sb.data.changes) + dt.timedelta(seconds=1)
        assert units_after(seeded.strftime("%Y-%m-%dT%H:%M:%SZ")) == []
        never = f"{sb.today - 30 * DAY}T00:00:00Z"  # a unit without changes (1020-105)
        assert len(units_after(never)) == 8  # inclusive
        assert "1020-105" not in units_after(f"{sb.today - 30 * DAY}T00:00:01Z")
        sb.add_reservation("ünit 9", sb.today + 40 * DAY, sb.today + 42 * DAY)
        assert units_after(seeded.strftime("%Y-%m-%dT%H:%M:%S")) == ["ünit 9"]
        assert len(units_after("2000-01-01T00:00:00+10:00")) == 8
        r = call(sb, http, "UnitCalendarAvailBatch", batch(UpdatedAfter="yesterday"), path=CONTENT)
        assert error_of(r, "UnitCalendarAvailBatch")[:2] == ("3", "320")


# -- faults ----------------------------------------------------------------------------------
def test_unit_and_operation_faults(sb, http):
    sb.fail_unit("ünit 9", 500)
    r = call(sb, http, "UnitCalendarAvail", calendar("ünit 9", "01/01/2027", "01/31/2027"))
    assert fault_of(r, 500) == ("s:Server", "Internal error")
    ok(call(sb, http, "UnitCalendarAvail", calendar("1020-101", "01/01/2027", "01/31/2027")), "UnitCalendarAvail")
    rs = ok(call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT), "UnitCalendarAvailBatch")
    assert [a.get("UnitCode") for a in rs.iter(e("UnitCalendarAvail"))] == [u for u in sb.unit_ids() if u != "ünit 9"]
    sb.fail_operation("UnitCalendarAvailBatch", 503, times=1, retry_after=5)
    r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT)
    assert fault_of(r, 503)[0] == "s:Server" and r.headers["Retry-After"] == "5"
    sb.clear_faults()
    rs = ok(call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT), "UnitCalendarAvailBatch")
    assert len(list(rs.iter(e("UnitCalendarAvail")))) == 11
    assert sb.request_count("UnitCalendarAvailBatch") == 3 and sb.request_count("UnitCalendarAvail") == 2


def test_soap_modes_via_control_api(sb, http):
    assert http.post(f"{sb.base_url}/_sandbox/faults", json={"soap": "nope"}).status_code == 400
    assert http.post(f"{sb.base_url}/_sandbox/faults", json={"soap": "errors"}).status_code == 200
    assert sb.soap_fault_mode == "errors"
    assert http.delete(f"{sb.base_url}/_sandbox/faults").status_code == 200
    assert sb.soap_fault_mode is None
    with pytest.raises(ValueError):
        sb.soap_fault_mode = "nope"


@pytest.mark.parametrize("mode", SOAP_FAULT_MODES)
def test_soap_fault_modes(sb, http, mode):
    def cal():
        return call(sb, http, "UnitCalendarAvail", calendar("1020-101", "12/30/2026", "01/30/2027"))

    normal = ok(cal(), "UnitCalendarAvail").findtext(f".//{e('DailyAvailability')}")
    sb.soap_fault_mode = mode
    search, one = call(sb, http, "UnitSearch"), cal()
    many = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT)
    if mode == "errors":
        for r, op in [(search, "UnitSearch"), (one, "UnitCalendarAvail"), (many, "UnitCalendarAvailBatch")]:
            assert error_of(r, op) == ("12", "448", "System error")
    elif mode in ("malformed", "bomb"):
        for r in (search, one, many):
            assert r.status_code == 200 and len(r.content) < 10_000
            with pytest.raises(defusedxml.EntitiesForbidden if mode == "bomb" else SafeET.ParseError):
                SafeET.fromstring(r.content)
            assert ("<!ENTITY" in r.text) == (mode == "bomb")
    elif mode == "bad_chars":
        assert ok(one, "UnitCalendarAvail").findtext(f".//{e('DailyAvailability')}") == normal.replace("U", "X", 1)
        texts = [d.text for d in ok(many, "UnitCalendarAvailBatch").iter(e("DailyAvailability"))]
        assert "U" in normal and sum("X" in t for t in texts) >= 8
        assert all("U" not in t.partition("X")[0] and t.count("X") <= 1 for t in texts)
    elif mode == "no_start_date":
        segments = [*ok(one, "UnitCalendarAvail").iter(e("UnitCalendarAvailSegment")),
                    *ok(many, "UnitCalendarAvailBatch").iter(e("UnitCalendarAvailSegment"))]
        assert len(segments) == 12 and all(s.get("StartDate") is None and s.get("EndDate") for s in segments)
    else:  # empty_units
        assert len(ok(search, "UnitSearch").find(e("Units"))) == 0
        assert len(ok(many, "UnitCalendarAvailBatch").find(e("UnitCalendarAvails"))) == 0
    sb.clear_faults()
    assert ok(cal(), "UnitCalendarAvail").findtext(f".//{e('DailyAvailability')}") == normal


# -- fidelity to the published artefacts (API-NOTES: "Added after a review") -------------------
def test_content_service_nests_the_batch_answer_and_its_errors(sb, http):
    r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT)
    outer = SafeET.fromstring(r.content).find(f"{{{SOAP}}}Body/{e('EVRN_UnitCalendarAvailBatchRS')}")
    assert [c.tag for c in outer] == [e("EVRN_UnitCalendarAvailBatchRS")]
    assert [c.tag for c in outer[0]] == [e("Success"), e("UnitCalendarAvails")]
    r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT, password="wrong")
    outer = SafeET.fromstring(r.content).find(f"{{{SOAP}}}Body/{e('EVRN_UnitCalendarAvailBatchRS')}")
    assert outer.find(e("Errors")) is None and outer.find(f"{e('EVRN_UnitCalendarAvailBatchRS')}/{e('Errors')}") is not None
    assert error_of(r, "UnitCalendarAvailBatch")[:2] == ("4", "497")
    r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=SERVICE)  # the transaction service: flat
    flat = SafeET.fromstring(r.content).find(f"{{{SOAP}}}Body/{e('EVRN_UnitCalendarAvailBatchRS')}")
    assert flat[0].tag == e("Success")


def test_holds_are_hidden_unless_asked(sb, http):
    unit, start, last = "1020-102", TODAY - 7 * DAY, TODAY + 729 * DAY
    holds = {d for r in sb.reservations(unit) if r["holdType"] != "None"
             for d in (dt.date.fromisoformat(r["start"]) + i * DAY
                       for i in range((dt.date.fromisoformat(r["end"]) - dt.date.fromisoformat(r["start"])).days))}
    stays = {d for r in sb.reservations(unit) if r["holdType"] == "None"
             for d in (dt.date.fromisoformat(r["start"]) + i * DAY
                       for i in range((dt.date.fromisoformat(r["end"]) - dt.date.fromisoformat(r["start"])).days))}
    assert holds - stays
    everything = sb.blocked_nights(unit, start, last + DAY)
    for shown, expected in ((None, everything - (holds - stays)), ("false", everything - (holds - stays)),
                            ("true", everything)):
        r = call(sb, http, "UnitCalendarAvail", calendar(unit, start.isoformat(), last.isoformat(), holds=shown))
        assert decode(ok(r, "UnitCalendarAvail").find(f".//{e('UnitCalendarAvailSegment')}"))[2] == expected
    for show, expected in ((None, everything - (holds - stays)), ("true", everything)):
        kw = {"ShowHold": show} if show else {}
        r = call(sb, http, "UnitCalendarAvailBatch", batch((start.isoformat(), last.isoformat())), path=CONTENT, **kw)
        avail = next(a for a in ok(r, "UnitCalendarAvailBatch").iter(e("UnitCalendarAvail"))
                     if a.get("UnitCode") == unit)
        assert decode(avail.find(e("UnitCalendarAvailSegment")))[2] == expected


def test_batch_date_range_is_honoured_and_capped(http):
    with Sandbox(today=TODAY, calendar_max_days=100) as sb:
        start, last = TODAY - 7 * DAY, TODAY + 729 * DAY
        r = call(sb, http, "UnitCalendarAvailBatch", batch((start.strftime("%m/%d/%Y"), last.strftime("%m/%d/%Y"))),
                 path=CONTENT, ShowHold="true")
        for avail in ok(r, "UnitCalendarAvailBatch").iter(e("UnitCalendarAvail")):
            seg_start, text, nights = decode(avail.find(e("UnitCalendarAvailSegment")))
            assert (seg_start, len(text)) == (start, 100)  # the cap, not what was asked
            assert nights == sb.blocked_nights(avail.get("UnitCode"), start, start + 100 * DAY)
        r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT)  # no range: today onwards
        seg = next(ok(r, "UnitCalendarAvailBatch").iter(e("UnitCalendarAvailSegment")))
        assert decode(seg)[0] == TODAY and len(seg.findtext(e("DailyAvailability"))) == 100
        r = call(sb, http, "UnitCalendarAvail", calendar("1020-101", start.isoformat(), last.isoformat()))
        assert len(ok(r, "UnitCalendarAvail").findtext(f".//{e('DailyAvailability')}")) == 100
        r = call(sb, http, "UnitCalendarAvailBatch", batch(("x", "y")), path=CONTENT)
        assert error_of(r, "UnitCalendarAvailBatch")[:2] == ("10", "321")


def test_unit_search_moredata_and_summary(http):
    with Sandbox(today=TODAY, extra_units=3, unit_list_cap=5) as sb:
        units = ok(call(sb, http, "UnitSearch"), "UnitSearch").find(e("Units"))
        assert len(units) == 5 and units.get("moredata") == "true"
        assert units[0].find(e("UnitSummary")) is not None
        units = ok(call(sb, http, "UnitSearch", MaxResponses="3", SendUnitSummary="false"), "UnitSearch").find(e("Units"))
        assert len(units) == 3 and units.get("moredata") == "true" and units[0].find(e("UnitSummary")) is None
        assert units[0].get("UnitName")  # the name still comes with the unit
        sb.unit_list_cap = None
        units = ok(call(sb, http, "UnitSearch"), "UnitSearch").find(e("Units"))
        assert len(units) == 11 and units.get("moredata") is None


def test_cached_batch_repeats_the_previous_answer(sb, http):
    def answer():
        r = call(sb, http, "UnitCalendarAvailBatch", batch(), path=CONTENT, SummaryOnly="true")
        return ok(r, "UnitCalendarAvailBatch").find(e("UnitCalendarAvails"))

    first = answer()
    assert first.get("CachedData") == "false"
    sb.cached_batch = True
    sb.add_reservation("1020-101", TODAY + 300 * DAY, TODAY + 302 * DAY)
    cached = answer()
    assert cached.get("CachedData") == "true"
    assert [a.attrib for a in cached] == [a.attrib for a in first]  # the change is not in it
    sb.cached_batch = False
    assert answer().get("CachedData") == "false"
