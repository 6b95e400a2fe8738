"""The ``imports`` settings of an account: the channels' own calendar exports, watched for
bookings Escapia does not know (escapia_ical/imports).

    imports:
      every_minutes: 15            # how often each export is fetched (spread over ticks)
      block_in_escapia: false      # HSAPI: a work order blocks each unsynced booking (opt-in)
      max_writes_per_run: 20       # work orders created, moved or closed per run at most
      time_zone: Europe/Lisbon     # DATE-TIME events are read in it (default: the host's)
      units:
        "1020-10001":
          - {channel: airbnb, url: "https://www.airbnb.com/calendar/ical/1.ics?s=${AIRBNB_1}"}
          - {channel: booking, url: "https://ical.booking.com/v1/export?t=${BOOKING_1}",
             time_zone: Europe/Lisbon, blocks_are_bookings: true}   # "CLOSED - Not available"

An export URL is a secret (whoever holds it reads the calendar): it is never logged or
stored, only its channel name and host are shown; https only, plain http for loopback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .positions import KeyPath, Problem

_CHANNEL = {
    "type": "string", "minLength": 1, "maxLength": 40, "pattern": "^[a-z0-9][a-z0-9_.-]*$",
    "x-messages": {"pattern": "must match [a-z0-9][a-z0-9_.-]* (a short name such as airbnb)"},
}
_ZONE = {"type": "string", "minLength": 1, "maxLength": 64}
IMPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channel", "url"],
    "properties": {"channel": _CHANNEL, "url": {"type": "string", "minLength": 1}, "time_zone": _ZONE,
                   "blocks_are_bookings": {"type": "boolean"}},
}
IMPORTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["units"],
    "properties": {
        "every_minutes": {"type": "number", "minimum": 1, "maximum": 1440},
        "time_zone": _ZONE,
        "max_bytes": {"type": "integer", "minimum": 65536, "maximum": 32 * 1024 * 1024},
        "block_in_escapia": {"type": "boolean"},
        "max_writes_per_run": {"type": "integer", "minimum": 1, "maximum": 1000},
        "units": {"type": "object", "minProperties": 1,
                  "additionalProperties": {"type": "array", "minItems": 1, "items": IMPORT_SCHEMA}},
    },
}


@dataclass(frozen=True)
class ChannelImport:
    """One channel's export of one unit's calendar."""

    unit: str
    channel: str
    url: str = field(repr=False)
    time_zone: str | None = None  # None: the host's
    # Whether the channel words its bookings as blocks ("CLOSED - Not available": Booking.com),
    # so that write-back blocks them too (imports/writeback.py).
    blocks_are_bookings: bool = False

    @property
    def host(self) -> str:
        """What messages show of the URL: its host, never its path or query (the secret)."""
        return urlsplit(self.url).hostname or "?"

    @property
    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.time_zone) if self.time_zone else None


@dataclass(frozen=True)
class ImportSettings:
    """An account's channel imports (escapia_ical/imports)."""

    feeds: tuple[ChannelImport, ...]
    every_minutes: float = 15.0
    max_bytes: int = 4 * 1024 * 1024
    # Write-back (imports/writeback.py): an HSAPI work order blocks each unsynced booking.
    block_in_escapia: bool = False
    max_writes_per_run: int = 20

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(feed.url for feed in self.feeds)


def build_imports(data: Mapping[str, Any] | None) -> ImportSettings | None:
    """Given a validated ``imports`` mapping (or None), return its settings (or None)."""
    if not data:
        return None
    zone = data.get("time_zone")
    feeds = tuple(ChannelImport(str(unit), entry["channel"], entry["url"], entry.get("time_zone", zone),
                                bool(entry.get("blocks_are_bookings", False)))
                  for unit, entries in data["units"].items() for entry in entries)
    return ImportSettings(feeds, float(data.get("every_minutes", 15)), int(data.get("max_bytes", 4 << 20)),
                          bool(data.get("block_in_escapia", False)), int(data.get("max_writes_per_run", 20)))


def import_problems(data: Any, where: KeyPath, api: str = "hsapi") -> list[Problem]:
    """Given an ``imports`` mapping (checked against the schema separately) of an account of
    ``api``, return what the schema cannot say: URLs that are not https (loopback aside),
    unknown time zones, a channel named twice for one unit, write-back without work orders."""
    if not isinstance(data, dict):
        return []
    problems = _zone_problems(data.get("time_zone"), where + ("time_zone",))
    if data.get("block_in_escapia") is True and api != "hsapi":
        problems.append(Problem(where + ("block_in_escapia",), "EscapiaNET has no work orders to block "
                                "dates with: imports on an escapianet account detect conflicts only"))
    units = data.get("units")
    for unit, entries in units.items() if isinstance(units, dict) else ():
        seen: set[str] = set()
        for i, entry in enumerate(entries if isinstance(entries, list) else ()):
            if not isinstance(entry, dict):
                continue
            here = where + ("units", unit, i)
            channel = entry.get("channel")
            if isinstance(channel, str):
                if channel in seen:
                    problems.append(Problem(here + ("channel",),
                                            f"channel {channel} is named twice for unit {unit}"))
                seen.add(channel)
            url = entry.get("url")
            if isinstance(url, str) and (why := _url_problem(url)):
                problems.append(Problem(here + ("url",), why))
            problems += _zone_problems(entry.get("time_zone"), here + ("time_zone",))
    return problems


def _url_problem(url: str) -> str | None:
    from .accounts import url_problem  # (accounts imports this module's schema)

    why = url_problem(url, "https://www.airbnb.com/calendar/ical/<listing>.ics?s=<secret>")
    if why:
        return why
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "must not hold a user name or password; channels put their secret in the path or query"
    if re.search(r"\s", url):
        return "must not contain spaces"
    return None


def _zone_problems(zone: Any, where: KeyPath) -> list[Problem]:
    if not isinstance(zone, str) or not zone:
        return []
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        near = sorted(z for z in available_timezones() if z.lower() == zone.lower())
        hint = f" (did you mean {near[0]}?)" if near else " (an IANA name such as Europe/Lisbon)"
        return [Problem(where, f"unknown time zone {zone!r}{hint}")]
    return []
