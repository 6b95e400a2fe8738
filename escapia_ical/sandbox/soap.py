"""SOAP 1.1 plumbing of the EscapiaNET fake (:mod:`.escapianet`): envelopes, faults, EVRN
answers (flat, or nested as the content service nests its batch answer), request parsing."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # noqa: S405 - builds responses only; requests go through defusedxml

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from escapia_ical.sandbox.data import utc_now

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN_NS = "http://www.escapia.com/EVRN/2007/02"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
VERSION = "1.030"


class SoapFault(Exception):
    """Answered with HTTP ``status`` and a SOAP Fault body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class EvrnError(Exception):
    """Answered with HTTP 200 and ``<Errors><Error Type Code ShortText>text</Error></Errors>``."""

    def __init__(self, type_: int, code: int, short: str, text: str) -> None:
        super().__init__(text)
        self.type, self.code, self.short, self.text = type_, code, short, text


def q(tag: str) -> str:
    """A request element's qualified name. (Responses are built from plain names under a root
    carrying ``xmlns``, as ElementTree cannot serialize unprefixed attributes with a default namespace.)"""
    return f"{{{EVRN_NS}}}{tag}"


def envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}"><s:Body>'
            f"{inner}</s:Body></s:Envelope>").encode()


def fault_body(code: str, message: str) -> bytes:
    faultcode, faultstring = ET.Element("faultcode"), ET.Element("faultstring", {XML_LANG: "en-US"})
    faultcode.text, faultstring.text = code, message
    parts = (ET.tostring(e, encoding="unicode") for e in (faultcode, faultstring))
    return envelope(f"<s:Fault>{''.join(parts)}</s:Fault>")


def response_body(op: str, payload: list[ET.Element] | None = None, error: EvrnError | None = None,
                  *, nested: bool = False) -> bytes:
    """The ``EVRN_<op>RS`` answer; ``nested``: wrapped in an outer ``EVRN_<op>RS`` (the content
    service's batch), everything (Errors included) in the inner one."""
    stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    rs = ET.Element(f"EVRN_{op}RS", {"Version": VERSION, "TimeStamp": stamp})
    if error is not None:
        errors = ET.SubElement(rs, "Errors")
        item = ET.SubElement(errors, "Error", {"Type": str(error.type), "Code": str(error.code),
                                                  "ShortText": error.short})
        item.text = error.text
    else:
        ET.SubElement(rs, "Success")
        rs.extend(payload or [])
    if nested:
        outer = ET.Element(f"EVRN_{op}RS")
        outer.append(rs)
        rs = outer
    rs.set("xmlns", EVRN_NS)
    return envelope(ET.tostring(rs, encoding="unicode"))


def bomb_body(op: str) -> bytes:
    """A billion-laughs document: ten nested entities, each ten of the one below (~10**9 'lol')."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE s:Envelope [{entities}]>'
            f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body><EVRN_{op}RS xmlns="{EVRN_NS}" Version="{VERSION}">'
            f'<Success/><Warnings><Warning Type="1">&lol9;</Warning></Warnings></EVRN_{op}RS>'
            "</s:Body></s:Envelope>").encode()


def soap_action(value: str | None) -> str:
    """``UnitSearch``, ``"UnitSearch"`` and ``http://.../UnitSearch`` all name UnitSearch."""
    return (value or "").strip().strip('"').strip().rsplit("/", 1)[-1]


def parse_request(raw: bytes, op: str) -> ET.Element:
    """The ``EVRN_<op>RQ`` element of a SOAP 1.1 envelope, or a Client fault."""
    try:
        root = SafeET.fromstring(raw)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise SoapFault(500, "s:Client", f"malformed request XML: {exc}") from None
    body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    if body is None:
        raise SoapFault(500, "s:Client", "request is not a SOAP 1.1 Envelope with a Body")
    children = list(body)
    if len(children) != 1 or children[0].tag != q(f"EVRN_{op}RQ"):
        got = children[0].tag if children else "nothing"
        raise SoapFault(500, "s:Client", f"SOAPAction {op} expects one {q(f'EVRN_{op}RQ')} in Body, "
                                         f"got {got}")
    return children[0]


def parse_date(value: str | None) -> dt.date | None:
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value or "", fmt).date()
        except ValueError:
            pass
    return None


def parse_datetime(value: str | None) -> dt.datetime | None:
    if value is None or not value.strip():
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EvrnError(3, 320, "Invalid value", f"UpdatedAfter is not an xs:dateTime: {value!r}") from None
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


def flag(value: str | None) -> bool:
    """An xs:boolean (or ShowHolds' xs:string) that says yes."""
    return (value or "").strip().lower() in ("true", "1")
