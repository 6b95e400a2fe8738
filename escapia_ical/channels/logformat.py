"""Lines of the nginx access log, as the shipped snippet writes them (or nginx's default
``combined`` format), turned into feed requests.

The shipped format (``log_format escapia_ical`` in config/nginx.conf.example) is six
tab-separated fields and no client address::

    $time_iso8601  $request_method  $uri  $status  $body_bytes_sent  $http_user_agent

nginx escapes ``"``, ``\\`` and every byte below 32 or above 126 in a variable as ``\\xXX``,
so a tab inside a field cannot occur. ``combined`` is accepted too, for a server that
already logs that way; its client address is matched but never captured, so it is not
kept anywhere. Work per line is kept small: the path is looked up first, and only a
request for a known feed has its time parsed and its User-Agent classified.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from escapia_ical.channels.agents import channel_of

FETCH_METHODS = frozenset({b"GET", b"HEAD"})
# $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
# "$http_user_agent": the address and user are skipped without a group.
_COMBINED = re.compile(
    rb'\S+ \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)(?: [^"]*)?" (\d{3}) (?:\d+|-) "[^"]*" "([^"]*)"')
_SHIPPED_FIELDS = 6


@dataclass(frozen=True)
class Request:
    """One request as the log says it: when (UTC), method, path, status, User-Agent."""

    time: dt.datetime
    method: str
    path: str
    status: int
    user_agent: str


@dataclass
class Fetch:
    """What a channel did with one feed over the lines read: first and last fetch (epoch
    seconds), the status of the last one, and how many."""

    first: float
    last: float
    status: int
    count: int = 1


@dataclass
class Tally:
    """What a scan found: lines read, of which in no known format or a fetch whose time or
    status cannot be read (``malformed``), requests that are not a fetch of a known feed
    (``ignored``), and the fetches themselves (see ``fetches``)."""

    lines: int = 0
    malformed: int = 0
    ignored: int = 0
    # (feed, raw User-Agent) -> [first, last, status of the last, count]: the agent is
    # classified once per distinct value, not once per line.
    by_agent: dict[tuple[Hashable, bytes], list] = field(default_factory=dict)

    @property
    def fetches(self) -> dict[tuple[Hashable, str], Fetch]:
        """Per (feed, channel): its Fetch over every line scanned."""
        fetches: dict[tuple[Hashable, str], Fetch] = {}
        for (feed, agent), (first, last, status, count) in self.by_agent.items():
            key = (feed, channel_of(_agent(agent)))
            fetch = fetches.get(key)
            if fetch is None:
                fetches[key] = Fetch(first, last, status, count)
                continue
            fetch.count += count
            fetch.first = min(fetch.first, first)
            if last >= fetch.last:
                fetch.last, fetch.status = last, status
        return fetches


def split_line(line: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, Callable[[bytes], float]] | None:
    """Given one log line (no newline), return (time text, method, path, status, agent,
    the parser of that time text) in either format, or None if it is in neither."""
    fields = line.split(b"\t")
    if len(fields) == _SHIPPED_FIELDS:
        return fields[0], fields[1], fields[2], fields[3], fields[5], iso_time
    match = _COMBINED.match(line)
    if match is None:
        return None
    when, method, target, status, agent = match.groups()
    return when, method, target.partition(b"?")[0], status, agent, local_time


def scan(block: bytes, feeds: Mapping[bytes, Hashable], tally: Tally) -> None:
    """Add the lines of ``block`` (whole lines, ``\\n``-separated) to ``tally``: a GET or
    HEAD of a path in ``feeds`` (path -> feed key) counts as a fetch of that feed by the
    channel its User-Agent names. A line in neither format, or a fetch whose time or
    status cannot be read, is counted as malformed; nothing raises.

    The hot loop of the tracker (see scripts/bench-channels): the shipped format is split
    inline, times and statuses are looked up in small tables."""
    by_agent, times = tally.by_agent, _TIMES
    if len(times) > _MAX_TIMES:
        times.clear()
    for line in block.split(b"\n"):
        fields = line.split(b"\t")
        if len(fields) == _SHIPPED_FIELDS:
            when_text, method, path, status_text, _, agent = fields
            parse_time = iso_time
        elif not line:
            continue
        else:
            parts = split_line(line)
            tally.lines += 1
            if parts is None:
                tally.malformed += 1
                continue
            tally.lines -= 1
            when_text, method, path, status_text, agent, parse_time = parts
        tally.lines += 1
        feed = feeds.get(path)
        if feed is None or method not in FETCH_METHODS:
            tally.ignored += 1
            continue
        status = _STATUSES.get(status_text)
        when = times.get(when_text)
        if when is None:
            try:
                when = times[when_text] = parse_time(when_text)
            except ValueError:
                status = None
        if status is None:
            tally.malformed += 1
            continue
        entry = by_agent.get((feed, agent))
        if entry is None:
            by_agent[(feed, agent)] = [when, when, status, 1]
            continue
        entry[3] += 1
        if when >= entry[1]:
            entry[1], entry[2] = when, status
        elif when < entry[0]:
            entry[0] = when


_STATUSES = {str(code).encode(): code for code in range(100, 600)}
_TIMES: dict[bytes, float] = {}  # time text -> epoch seconds, both formats (they never collide)
_MAX_TIMES = 100_000


def parse_line(line: bytes) -> Request | None:
    """Given one log line, return the Request it records, or None if it is malformed."""
    parts = split_line(line.rstrip(b"\r\n"))
    if parts is None:
        return None
    when_text, method, path, status_text, agent, parse_time = parts
    try:
        when, status = parse_time(when_text), _status(status_text)
    except ValueError:
        return None
    return Request(dt.datetime.fromtimestamp(when, dt.UTC), method.decode("ascii", "replace"),
                   path.decode("utf-8", "replace"), status, _agent(agent))


def _status(text: bytes) -> int:
    if text not in _STATUSES:
        raise ValueError("not an HTTP status")
    return _STATUSES[text]


def _agent(text: bytes) -> str:
    return "" if text == b"-" else text.decode("utf-8", "replace")


def iso_time(text: bytes) -> float:
    """``2026-05-01T12:00:00+00:00`` -> epoch seconds. Raise ValueError (also without a zone)."""
    moment = dt.datetime.fromisoformat(text.decode("ascii"))
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return moment.timestamp()


_MONTHS = {name: i for i, name in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}


def local_time(text: bytes) -> float:
    """``01/May/2026:12:00:00 +0200`` (nginx's $time_local, always English) -> epoch seconds.
    Raise ValueError."""
    try:
        day, month, rest = text.split(b"/", 2)
        year, hour, minute, second_zone = rest.split(b":", 3)
        second, zone = second_zone.split(b" ")
        if len(zone) != 5 or zone[:1] not in (b"+", b"-"):
            raise ValueError("zone")
        sign = -1 if zone[:1] == b"-" else 1
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        moment = dt.datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second),
                             tzinfo=dt.timezone(offset))
    except (KeyError, ValueError, IndexError) as exc:
        raise ValueError(f"not a $time_local: {exc}") from None
    return moment.timestamp()
