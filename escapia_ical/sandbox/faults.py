"""Fault injection: make the sandbox misbehave the way a real Escapia (or the network) can.

``Sandbox.inject(fault, *, op=None, unit=None, times=None, **params)`` adds a fault;
``Sandbox.clear_faults()`` removes them all (``POST /_sandbox/faults {"fault": NAME, ...}``
and ``DELETE /_sandbox/faults`` do the same over HTTP). A fault fires on every API request it
matches and can change, until it has fired ``times`` times (None: until cleared):

* ``op`` limits it to one operation (HSAPI ``GetUnitNonAvailability``, ``auth/token``, ...;
  EscapiaNET ``UnitSearch``, ``UnitCalendarAvail``, ``UnitCalendarAvailBatch``). Content
  faults without ``op`` touch only calendar answers.
* ``unit`` limits it to one unit's calendar: the unit's GetUnitNonAvailability or
  UnitCalendarAvail request, or (content faults only) its calendar inside a batch answer.

Faults are applied to the answer the sandbox was about to send, in the order injected:

=================  =========================  ===============================================
fault              params (defaults)          what the client gets
=================  =========================  ===============================================
latency            seconds=0.5                the normal answer, late
timeout            seconds=3.0                the normal answer after ``seconds`` (set it
                                              above the client's read timeout)
reset              -                          the connection closed (RST) without an answer
status             status=503,                that status: the API's own error body (500,
                   retry_after=None           503, ...) or a gateway's HTML page (502, 504)
rate_limit         retry_after=1              429 with Retry-After (None: no header)
malformed          -                          200, JSON/XML that does not parse
truncated          keep=0.5,                  200, the first ``keep`` share of the body;
                   announce_full=False        ``announce_full``: Content-Length of the whole
                                              body, then the connection closes
entity_bomb        -                          200, a billion-laughs XML document (EscapiaNET)
deep_nesting       depth=100000               200, ``[[[...]]]`` nested ``depth`` deep (HSAPI)
huge_body          size=10 MiB, style="key",  200, the same valid answer padded by ``size``
                   chunked=False              bytes: an unknown key/element, or whitespace;
                                              ``chunked``: Transfer-Encoding: chunked, no
                                              Content-Length
empty              fill=""                    HSAPI: ``results: []`` / ``[]``; EscapiaNET: no
                                              Units, DailyAvailability "" (or ``fill`` * len)
wrong_types        -                          HSAPI: results as an object, startDate as a
                                              number; EscapiaNET: StartDate="20261123"
end_before_start   -                          every range/segment ends before it starts
absurd_dates       year=1                     every range/segment moved to ``year``
expire_tokens      calls=3                    HSAPI bearer tokens die after ``calls`` uses
                                              (401); ``times`` counts expiries
trickle            seconds=2.0, part="body"   the answer one byte every ``seconds``: its
                                              status line and headers ("headers"; then the
                                              body too) or its body ("body"), never tripping
                                              a read timeout
redirect           status=307, location=None  ``status`` (307/308) to ``location`` (None: the
                                              same path on http://127.0.0.1:9, another origin)
odd_items          item="ref"                 HSAPI: a contract-legal odd NonAvailability item
                                              (no dateRange, null, a ``$ref``, an end of
                                              ``0001-01-01T00:00:00``, datetimes): :mod:`.odd_items`
=================  =========================  ===============================================

``trickle`` and ``redirect`` model the network and proxies in front of Escapia (a stalled
link, a captive portal, a misconfigured load balancer), not Escapia's contract.

Consistent wrongness: answers that parse
----------------------------------------
Content faults whose answers are well-formed and name the asked unit, yet are wrong: empty,
another unit's, shifted, or shorter than asked. They are listed, with what the published
artefacts say of each (nothing), in :mod:`.wrong_answers`: same_answer, shift, flaky,
short_string, short_coverage, duplicate_calendar.

A fault that cannot change an answer (a JSON fault on XML, a content fault on an error
answer, a unit not in the batch) lets it pass and is not counted. The request log records
the faults that fired on each request (``"faults"``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from escapia_ical.sandbox import fault_bodies, odd_items, wrong_answers
from escapia_ical.sandbox.escapianet import fault_body

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox

GATEWAY_PAGE = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
REASONS = {500: "Internal Server Error", 502: "502 Bad Gateway", 503: "Service Unavailable",
           504: "504 Gateway Time-out"}
CALENDAR_OPS = ("GetUnitNonAvailability", "UnitCalendarAvail", "UnitCalendarAvailBatch")
DISCARD_PORT = 9  # redirect's default target: another origin, where nothing listens

# name -> (kind, default params). Kinds: transport (any answer), body (a 200 JSON/XML body),
# content (a 200 answer's data), token (HSAPI bearer checks).
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "latency": ("transport", {"seconds": 0.5}),
    "timeout": ("transport", {"seconds": 3.0}),
    "reset": ("transport", {}),
    "status": ("transport", {"status": 503, "retry_after": None}),
    "rate_limit": ("transport", {"retry_after": 1}),
    "malformed": ("body", {}),
    "truncated": ("body", {"keep": 0.5, "announce_full": False}),
    "entity_bomb": ("body", {}),
    "deep_nesting": ("body", {"depth": 100_000}),
    "huge_body": ("body", {"size": 10 * 1024 * 1024, "style": "key", "chunked": False}),
    "empty": ("content", {"fill": ""}),
    "wrong_types": ("content", {}),
    "end_before_start": ("content", {}),
    "absurd_dates": ("content", {"year": 1}),
    **{name: ("content", defaults) for name, defaults in wrong_answers.FAULTS.items()},  # parse, wrong
    **{name: ("content", defaults) for name, defaults in odd_items.FAULTS.items()},  # legal, odd
    "expire_tokens": ("token", {"calls": 3}),
    "trickle": ("transport", {"seconds": 2.0, "part": "body"}),
    "redirect": ("transport", {"status": 307, "location": None}),
}


@dataclass
class Answer:
    """What the handler is about to send."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    api: str  # "hsapi" or "soap"
    delay: float = 0.0  # seconds to wait before answering
    reset: bool = False  # close the connection without answering
    announced_length: int | None = None  # Content-Length if not len(body); then close
    path: str = ""  # the request's path
    runs: list = field(default_factory=list)  # fault_bodies.Runs, inserted into body when sent
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    trickle: tuple[float, str] | None = None  # (seconds between bytes, "headers" or "body")


@dataclass
class Fault:
    name: str
    op: str | None = None
    unit: str | None = None
    times: int | None = None  # remaining; None: until cleared
    params: dict[str, Any] = field(default_factory=dict)
    token_uses: dict[str, int] = field(default_factory=dict)  # expire_tokens only
    seen: int = 0  # flaky only: calendar answers counted

    def describe(self) -> dict:
        return {"fault": self.name, "op": self.op, "unit": self.unit, "times": self.times,
                "params": dict(self.params)}


def make_fault(name: str, op: str | None, unit: str | None, times: int | None,
               params: dict[str, Any]) -> Fault:
    """Return a validated :class:`Fault`; raise ValueError naming what is wrong."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; one of {sorted(FAULTS)}")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError(f"times must be a positive integer or None, got {times!r}")
    if unit is not None and not isinstance(unit, str):
        raise ValueError(f"unit must be a unit id, got {unit!r}")
    defaults = FAULTS[name][1]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"fault {name!r} takes {sorted(defaults) or 'no parameters'}, not {unknown}")
    merged = {**defaults, **params}
    _check_params(name, merged)
    return Fault(name, op, unit, times, merged)


def _check_params(name: str, p: dict[str, Any]) -> None:
    if name in wrong_answers.FAULTS:
        return wrong_answers.check_params(name, p)
    if name in odd_items.FAULTS:
        return odd_items.check_params(name, p)

    def number(key: str, low: float, high: float, integer: bool = False) -> None:
        value = p[key]
        ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
        if not ok or not low <= value <= high:
            raise ValueError(f"{name}: {key} must be a {'whole ' if integer else ''}number "
                             f"in {low}..{high}, got {value!r}")

    for key, (low, high, integer) in {"seconds": (0, 600, False), "status": (100, 599, True),
                                      "keep": (0, 1, False), "depth": (1, 10_000_000, True),
                                      "size": (0, 1 << 30, True), "year": (1, 9999, True),
                                      "calls": (1, 1 << 30, True)}.items():
        if key in p:
            number(key, low, high, integer)
    if p.get("retry_after") is not None:
        number("retry_after", 0, 1 << 30, True)
    if "style" in p and p["style"] not in ("key", "whitespace"):
        raise ValueError(f"{name}: style must be 'key' or 'whitespace', got {p['style']!r}")
    if "fill" in p and (not isinstance(p["fill"], str) or len(p["fill"]) > 1):
        raise ValueError(f"{name}: fill must be '' or one character, got {p['fill']!r}")
    if "announce_full" in p and not isinstance(p["announce_full"], bool):
        raise ValueError(f"{name}: announce_full must be true or false")
    if "chunked" in p and not isinstance(p["chunked"], bool):
        raise ValueError(f"{name}: chunked must be true or false")
    if "part" in p and p["part"] not in ("headers", "body"):
        raise ValueError(f"{name}: part must be 'headers' or 'body', got {p['part']!r}")
    if name == "redirect" and p["status"] not in (307, 308):
        raise ValueError(f"redirect: status must be 307 or 308, got {p['status']!r}")
    location = p.get("location")
    if location is not None and not (isinstance(location, str) and location.startswith(("http://", "https://"))):
        raise ValueError(f"{name}: location must be an http(s) URL or None, got {p['location']!r}")


class FaultSet:
    """The faults in force; thread-safe (handler threads apply, tests inject). With a
    ``sandbox``, its lock is shared (``same_answer`` reads its data while applying)."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._sandbox = sandbox
        self._lock = sandbox._lock if sandbox is not None else threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def remove(self, names: tuple[str, ...], op: str | None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if not (f.name in names and f.op == op)]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def _fired(self, fault: Fault) -> None:
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)

    def token_expired(self, token: str, op: str | None) -> bool:
        """Count one use of an HSAPI bearer token; True if a fault expires it now."""
        with self._lock:
            for fault in [f for f in self._faults if f.name == "expire_tokens"]:
                if fault.op not in (None, op):
                    continue
                fault.token_uses[token] = fault.token_uses.get(token, 0) + 1
                if fault.token_uses[token] > fault.params["calls"]:
                    self._fired(fault)
                    return True
        return False

    def apply(self, ctx: dict, answer: Answer) -> Answer:
        """Return the answer after every matching fault; record their names in ctx["faults"]."""
        op, fired = ctx.get("op"), ctx.setdefault("faults", [])
        with self._lock:
            for fault in list(self._faults):
                kind = FAULTS[fault.name][0]
                if kind == "token" or (fault.op is not None and fault.op != op):
                    continue
                if fault.op is None and kind == "content" and op not in CALENDAR_OPS:
                    continue
                in_batch = kind == "content" and op == "UnitCalendarAvailBatch"
                if fault.unit is not None and fault.unit != ctx.get("unit") and not in_batch:
                    continue
                if fault.name in wrong_answers.FAULTS:
                    changed = wrong_answers.apply(fault, self._sandbox, ctx, answer)
                elif fault.name in odd_items.FAULTS:
                    changed = odd_items.apply(fault, ctx, answer)
                else:
                    changed = _APPLY[kind](fault, op, answer)
                if changed is None:
                    continue
                answer = changed
                fired.append(fault.name)
                self._fired(fault)
                if answer.reset:
                    break
        return answer


def _transport(fault: Fault, op: str | None, answer: Answer) -> Answer:
    p = fault.params
    if fault.name in ("latency", "timeout"):
        answer.delay += p["seconds"]
        return answer
    if fault.name == "reset":
        answer.reset = True
        return answer
    if fault.name == "trickle":
        answer.trickle = (p["seconds"], p["part"])
        return answer
    if fault.name == "redirect":
        location = p["location"] or f"http://127.0.0.1:{DISCARD_PORT}{answer.path}"
        return Answer(p["status"], b"<html><body>Moved</body></html>", "text/html", {"Location": location},
                      answer.api, answer.delay, path=answer.path, trickle=answer.trickle)
    status = 429 if fault.name == "rate_limit" else p["status"]
    headers: dict[str, str] = {}
    if p.get("retry_after") is not None:
        headers["Retry-After"] = str(p["retry_after"])
    if status in (502, 504):  # what a gateway in front of the API says
        body, content_type = GATEWAY_PAGE.format(REASONS[status]).encode(), "text/html"
    elif answer.api == "soap":
        busy = status in (429, 503)
        body = fault_body("s:Server", "Server Too Busy" if busy else "Internal error")
        content_type = answer.content_type
    else:
        if status == 429:
            headers.update({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Window": "60000"})
        message = "TooManyRequests" if status == 429 else "injected fault"
        body = json.dumps({"$id": "1", "status": status, "message": message}).encode()
        content_type = answer.content_type
    return Answer(status, body, content_type, headers, answer.api, answer.delay, path=answer.path,
                  trickle=answer.trickle)


def _body(fault: Fault, op: str | None, answer: Answer) -> Answer | None:
    if answer.status != 200:
        return None
    answer.body, answer.runs = fault_bodies.with_runs(answer.body, answer.runs), []
    if fault.name == "huge_body":
        answer.body, answer.runs = fault_bodies.padded(answer.api, answer.body, fault.params["size"],
                                                       fault.params["style"])
        answer.chunked = fault.params["chunked"]
        return answer
    changed = fault_bodies.transform_body(fault.name, fault.params, answer.api, op, answer.body)
    if changed is None:
        return None
    if fault.name == "truncated" and fault.params["announce_full"]:
        answer.announced_length = len(answer.body)
    answer.body = changed
    return answer


def _content(fault: Fault, op: str | None, answer: Answer) -> Answer | None:
    if answer.status != 200:
        return None
    answer.body, answer.runs = fault_bodies.with_runs(answer.body, answer.runs), []
    changed = fault_bodies.transform_content(fault.name, fault.params, answer.api, op, fault.unit,
                                             answer.body)
    if changed is None:
        return None
    answer.body = changed
    return answer


_APPLY = {"transport": _transport, "body": _body, "content": _content}
