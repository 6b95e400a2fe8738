"""Channel calendar exports in the sandbox (``GET /_channels/<name>.ics``): what Airbnb,
Vrbo and Booking.com serve to the PMSs that import them, for the double-booking watch
(escapia_ical/imports) to read. They are not Escapia: their requests are logged apart
(``Sandbox.channel_requests``) and never counted as API requests.

The shapes follow what those exports are publicly known to look like (PRODID, all-day
events, SUMMARY wording: Airbnb "Reserved" / "Airbnb (Not available)" with a reservation
link and phone digits in DESCRIPTION, Vrbo "Reserved - <guest>", Booking.com "CLOSED - Not
available"); their UIDs, the guest details (invented: "Jane Doe", 1234) and the DATE-TIME
events (``"datetime": true``: 15:00 to 11:00 in ``tz``) are **invented**, to test that
nothing of a guest is ever kept and that timed events are read in the unit's zone.

Control (``/_sandbox/channels``)::

    PUT    /_sandbox/channels/NAME   {"shape": "airbnb"|"vrbo"|"booking", "events": [
                                       {"start", "end", "blocked"?, "uid"?, "datetime"?, "tz"?,
                                        "rrule"?, "cancelled"?}], "status"?: int, "body"?: str}
    DELETE /_sandbox/channels/NAME   the export answers 404
    GET    /_sandbox/channels        {"channels": {NAME: {"requests", "notModified", "agents"}}}

An answer carries ETag (of its bytes) and Last-Modified (its last PUT); a GET with the
matching If-None-Match, or If-Modified-Since not before it, answers 304. ``status``
makes it answer that status; ``body`` replaces the calendar with those bytes.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

PRODIDS = {"airbnb": "-//Airbnb Inc//Hosting Calendar 0.8.8//EN", "vrbo": "-//HomeAway.com, Inc.//EN",
           "booking": "-//Booking.com//Booking.com Calendar//EN"}
SHAPES = tuple(PRODIDS)


@dataclass
class ChannelFeed:
    shape: str
    events: list[dict[str, Any]]
    status: int = 200
    body: bytes | None = None
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))


class ChannelExports:
    """The exports the sandbox serves, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.feeds: dict[str, ChannelFeed] = {}
        self.requests: list[dict[str, Any]] = []  # {"name", "status", "agent", "conditional"}

    def put(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        shape = body.get("shape", "airbnb")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
        events = body.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("events must be a list of mappings")
        for event in events:
            for key in ("start", "end"):
                dt.date.fromisoformat(event[key])  # ValueError/KeyError: refused
        raw = body.get("body")
        feed = ChannelFeed(shape, events, int(body.get("status", 200)),
                           raw.encode("utf-8") if isinstance(raw, str) else None)
        with self._lock:
            old = self.feeds.get(name)
            if old is not None and _same(old, feed):
                feed.modified = old.modified  # unchanged: still not modified
            self.feeds[name] = feed
        return {"ok": True}

    def delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            self.feeds.pop(name, None)
        return {"ok": True}

    def summary(self) -> dict[str, Any]:
        with self._lock:
            names = sorted({r["name"] for r in self.requests} | set(self.feeds))
            return {"channels": {n: {"requests": sum(1 for r in self.requests if r["name"] == n),
                                     "notModified": sum(1 for r in self.requests
                                                        if r["name"] == n and r["status"] == 304),
                                     "agents": sorted({r["agent"] for r in self.requests if r["name"] == n})}
                                 for n in names}}

    def serve(self, name: str, headers: Any) -> tuple[int, bytes, dict[str, str]]:
        """Return (status, body, headers) of a GET of the export ``name``."""
        with self._lock:
            feed = self.feeds.get(name)
        agent = headers.get("User-Agent", "")
        conditional = bool(headers.get("If-None-Match") or headers.get("If-Modified-Since"))
        if feed is None:
            status, body, extra = 404, b"not found", {}
        elif feed.status != 200:
            status, body, extra = feed.status, b"channel error", {}
        else:
            body = feed.body if feed.body is not None else _render(feed)
            etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            modified = email.utils.format_datetime(feed.modified, usegmt=True)
            extra = {"ETag": etag, "Last-Modified": modified}
            status = 304 if _not_modified(headers, etag, feed.modified) else 200
            body = b"" if status == 304 else body
        with self._lock:
            self.requests.append({"name": name, "status": status, "agent": agent, "conditional": conditional})
        return status, body, extra


def _same(old: ChannelFeed, new: ChannelFeed) -> bool:
    return (_render(old), old.status, old.body) == (_render(new), new.status, new.body)


def _not_modified(headers: Any, etag: str, modified: dt.datetime) -> bool:
    asked = headers.get("If-None-Match")
    if asked:
        return etag in [tag.strip() for tag in asked.split(",")]
    since = headers.get("If-Modified-Since")
    if since:
        try:
            return email.utils.parsedate_to_datetime(since) >= modified
        except (TypeError, ValueError):
            return False
    return False


def _render(feed: ChannelFeed) -> bytes:
    lines = ["BEGIN:VCALENDAR", f"PRODID:{PRODIDS[feed.shape]}", "CALSCALE:GREGORIAN", "VERSION:2.0"]
    for i, event in enumerate(feed.events):
        start, end = dt.date.fromisoformat(event["start"]), dt.date.fromisoformat(event["end"])
        made = hashlib.sha256(f"{feed.shape}{i}{start}".encode()).hexdigest()[:32]
        uid = event.get("uid") or f"{made}@{feed.shape}.example"
        lines += ["BEGIN:VEVENT", "DTSTAMP:20261201T000000Z"]
        if event.get("datetime"):
            zone = event.get("tz", "UTC")
            lines += [f"DTSTART;TZID={zone}:{start:%Y%m%d}T150000", f"DTEND;TZID={zone}:{end:%Y%m%d}T110000"]
        else:
            lines += [f"DTSTART;VALUE=DATE:{start:%Y%m%d}", f"DTEND;VALUE=DATE:{end:%Y%m%d}"]
        if event.get("rrule"):
            lines.append(f"RRULE:{event['rrule']}")
        if event.get("cancelled"):
            lines.append("STATUS:CANCELLED")
        lines += [f"UID:{uid}", *_words(feed.shape, bool(event.get("blocked"))), "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _words(shape: str, blocked: bool) -> list[str]:
    """SUMMARY (and DESCRIPTION) as each channel words them; the guest details are invented."""
    if shape == "airbnb":
        if blocked:
            return ["SUMMARY:Airbnb (Not available)"]
        return ["SUMMARY:Reserved", "DESCRIPTION:Reservation URL: https://www.airbnb.com/hosting/"
                "reservations/details/HMSANDBOX1\\nPhone Number (Last 4 Digits): 1234"]
    if shape == "vrbo":
        return ["SUMMARY:Blocked"] if blocked else ["SUMMARY:Reserved - Jane Doe"]
    return ["SUMMARY:CLOSED - Not available"]
