"""The answer bodies :mod:`.faults` produces: pure functions of the answer the sandbox was
about to send. Each returns the new body, or None when the fault cannot change this answer
(the fault then does not count as fired).

Content faults decode the sandbox's own JSON/XML, change the data and encode it again, so
the result is well-formed but wrong; body faults work on the bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses the sandbox's own answers only
from typing import Any

from escapia_ical.sandbox.escapianet import bomb_body, q

ONE_DAY = dt.timedelta(days=1)
PADDING_NS = "urn:escapia-sandbox:padding"
_RS_END = re.compile(rb"</(?:[\w.-]+:)?EVRN_\w+RS>")


def transform_body(name: str, p: dict[str, Any], api: str, op: str | None, body: bytes) -> bytes | None:
    """malformed, truncated, entity_bomb, deep_nesting, huge_body."""
    if name == "malformed":
        if api == "hsapi":  # "[,,{...}]" / "{,,"$id": ...}": a syntax error at the second byte
            return body[:1] + b",," + body[1:] if body else None
        end = body.rfind(b"</")  # "</xs:Envelope>": a mismatched end tag
        return body[:end + 2] + b"x" + body[end + 2:] if end >= 0 else None
    if name == "truncated":
        if len(body) < 2:
            return None
        return body[:min(len(body) - 1, max(1, int(len(body) * p["keep"])))]
    if name == "entity_bomb":
        return bomb_body(op or "Unknown") if api == "soap" else None
    if name == "deep_nesting":
        return b"[" * p["depth"] + b"]" * p["depth"] if api == "hsapi" else None
    if name == "huge_body":
        return with_runs(*padded(api, body, p["size"], p["style"]))
    raise AssertionError(name)


Runs = list[tuple[int, bytes, int]]  # (offset in the body, byte, count): inserted when sent


def padded(api: str, body: bytes, size: int, style: str) -> tuple[bytes, Runs]:
    """huge_body, cheaply: return the body with an empty padding key/element (style "key")
    and the runs that fill it, or that surround it with whitespace; the handler inserts
    the runs while sending, so a 40 MB answer never exists in memory."""
    return (_pad_json if api == "hsapi" else _pad_xml)(body, size, style)


def with_runs(body: bytes, runs: Runs) -> bytes:
    """Return ``body`` with ``runs`` inserted (what the client receives)."""
    parts, at = [], 0
    for offset, byte, count in sorted(runs):
        parts += [body[at:offset], byte * count]
        at = offset
    return b"".join([*parts, body[at:]])


def _pad_json(body: bytes, size: int, style: str) -> tuple[bytes, Runs]:
    if style == "key":
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        target = data if isinstance(data, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            target = data[0]
        if target is not None:
            target["sandboxPadding"] = ""  # an unknown key: clients ignore it
            encoded = json.dumps(data, ensure_ascii=False).encode("utf-8")
            return encoded, [(encoded.index(b'"sandboxPadding": "') + 19, b"x", size)]
    half = size // 2  # whitespace around the value is still the same JSON
    return body, [(0, b" ", half), (len(body), b"\n", size - half)]


def _pad_xml(body: bytes, size: int, style: str) -> tuple[bytes, Runs]:
    ends = list(_RS_END.finditer(body)) if style == "key" else []
    if ends:
        at = ends[-1].start()
        element = f'<SandboxPadding xmlns="{PADDING_NS}">'.encode()
        return body[:at] + element + b"</SandboxPadding>" + body[at:], [(at + len(element), b"x", size)]
    return body, [(len(body), b" ", size)]  # whitespace after the root element is allowed


def transform_content(name: str, p: dict[str, Any], api: str, op: str | None, unit: str | None,
                      body: bytes) -> bytes | None:
    """empty, wrong_types, end_before_start, absurd_dates."""
    if api == "hsapi":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        changed = _hsapi(name, p, op, data)
        return None if changed is None else json.dumps(changed, ensure_ascii=False).encode("utf-8")
    try:
        root = ET.fromstring(body)  # noqa: S314 - the sandbox's own answer
    except ET.ParseError:
        return None
    if not _soap(name, p, op, unit, root):
        return None
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _hsapi(name: str, p: dict[str, Any], op: str | None, data: Any) -> Any:
    if op == "SearchUnitSummaries" and isinstance(data, dict) and isinstance(data.get("results"), list):
        if name == "empty":
            data.update(results=[], totalCount=0, toIndex=data.get("fromIndex", 0))
            return data
        if name == "wrong_types":
            data["results"] = {str(i): r for i, r in enumerate(data["results"])}
            return data
        return None
    if op != "GetUnitNonAvailability" or not isinstance(data, list):
        return None
    if name == "empty":
        return []
    if name == "wrong_types":
        if not data:
            return {"$id": "1", "results": []}  # an object where an array belongs
        for item in data:
            dates = item["dateRange"]
            dates["startDate"] = int(dates["startDate"][:10].replace("-", ""))  # 20261123
        return data
    for item in data:
        dates = item["dateRange"]
        start, end = _moved(name, p, dt.date.fromisoformat(dates["startDate"][:10]),
                            dt.date.fromisoformat(dates["endDate"][:10]))
        dates.update(startDate=start.isoformat(), endDate=end.isoformat())
    return data


def _moved(name: str, p: dict[str, Any], start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    if name == "end_before_start":
        return (end, start) if end > start else (start, start - ONE_DAY)
    moved = _in_year(start, p["year"])
    return moved, _plus(moved, (end - start).days)


def _in_year(day: dt.date, year: int) -> dt.date:
    try:
        return day.replace(year=year)
    except ValueError:  # Feb 29
        return day.replace(year=year, day=28)


def _plus(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max


def _soap(name: str, p: dict[str, Any], op: str | None, unit: str | None, root: ET.Element) -> bool:
    if op == "UnitSearch":
        holders = list(root.iter(q("Units")))
        for units in holders if name == "empty" else []:
            units.clear()
        return name == "empty" and bool(holders)
    if op not in ("UnitCalendarAvail", "UnitCalendarAvailBatch"):
        return False
    calendars = [e for e in root.iter() if e.tag in (q("UnitCalendarAvail"), q("UnitCalendarAvailSegments"))
                 and unit in (None, e.get("UnitCode"))]
    segments = [s for c in calendars for s in c.iter(q("UnitCalendarAvailSegment"))]
    for segment in segments:
        daily = segment.find(q("DailyAvailability"))
        text = daily.text or "" if daily is not None else ""
        raw_start = segment.get("StartDate")
        start = dt.date.fromisoformat(raw_start) if raw_start else None
        if name == "empty" and daily is not None:
            daily.text = p["fill"] * len(text)
        elif start is None:
            continue
        elif name == "wrong_types":
            segment.set("StartDate", start.strftime("%Y%m%d"))
        elif name == "end_before_start":
            segment.set("EndDate", (start - ONE_DAY).isoformat())
        elif name == "absurd_dates":
            moved = _in_year(start, p["year"])
            segment.set("StartDate", moved.isoformat())
            segment.set("EndDate", _plus(moved, max(len(text) - 1, 0)).isoformat())
    return bool(segments)
