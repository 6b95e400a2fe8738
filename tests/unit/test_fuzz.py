"""Property-based tests (hypothesis) of everything that reads untrusted input or writes feeds.

Five families, each bounded so that the whole file runs in seconds:

1. the config loader: any YAML text gives a Config or a clean ConfigError, never another
   exception, and every problem is one ``FILE[:LINE]: what`` line;
2. the HSAPI JSON decoder: any bytes / JSON value gives values or a SourceError, and any
   NonAvailability date pair converts to a non-empty range or is skipped;
3. the EscapiaNET DailyAvailability decoder: its ranges block exactly the nights an
   independent oracle blocks, never overlap, never start on a free night;
4. unit id -> file name: never escapes the folder, bounded, injective;
5. the renderer: any set of ranges -> a calendar (parsed back with icalendar and vobject)
   whose blocked nights are the input's nights inside the window.

The minimal failing inputs of bugs these properties found (control characters and line
breaks in config keys, unusable paths, calendars reaching year 9999, surrogates and
control characters in unit names) stay as explicit ``@example``s.

The example counts are small for CI; ``ESCAPIA_FUZZ_SCALE=20 pytest tests/unit/test_fuzz.py``
runs a longer soak with the same properties.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - builds test input; never parses untrusted XML

import icalendar
import pytest
import vobject
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from escapia_ical.config import Config, FeedSettings, load_config
from escapia_ical.errors import ConfigError, SourceError
from escapia_ical.feeds.names import feed_filename
from escapia_ical.feeds.ranges import feed_blocks, range_from_api
from escapia_ical.feeds.render import display_name, render_feed
from escapia_ical.model import BlockedRange, FeedWindow, Unit
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.escapianet_decode import DailyDecoder, parse_answer, parse_unit_calendar
from escapia_ical.sources.hsapi_decode import parse_json, parse_nonavailability, parse_unit_page

# -- profile -----------------------------------------------------------------------------------

SCALE = max(1, int(os.environ.get("ESCAPIA_FUZZ_SCALE", "1")))
settings.register_profile(
    "escapia-fuzz",
    deadline=None,  # CI machines stall; time is bounded by max_examples instead
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=50 * SCALE,
)
PROFILE = settings.get_profile("escapia-fuzz")


def fuzz(examples: int) -> settings:
    """The module profile with ``examples`` (times ESCAPIA_FUZZ_SCALE) examples."""
    return settings(PROFILE, max_examples=examples * SCALE)


D = dt.date
ONE_DAY = dt.timedelta(days=1)
# Characters that split a str into lines (str.splitlines): a problem line must hold none.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Any character, lone surrogates included (hypothesis leaves them out by default).
ANY_CHAR = st.characters(exclude_categories=())
TEXT_WITH_SURROGATES = st.text(ANY_CHAR, max_size=40)

# -- 1. config loader --------------------------------------------------------------------------

EXAMPLE_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "config", "example.yaml")
with open(EXAMPLE_CONFIG, encoding="utf-8") as _file:
    EXAMPLE_TEXT = _file.read()
EXAMPLE_DOC = yaml.safe_load(EXAMPLE_TEXT)
ENVIRON = {
    "ESCAPIA_SANDBOX_URL": "http://127.0.0.1:8080",
    "DEMO_CLIENT_ID": "client-id",
    "DEMO_CLIENT_SECRET": "client-s3cret",
    "DEMO_SOAP_USER": "soap-user",
    "DEMO_SOAP_PASSWORD": "soap-pw",
}
# FILE:LINE: key: what, or FILE: what (unreadable file); one line each.
PROBLEM_LINE = re.compile(r"^.+?(:\d+)?: .+$")

KNOWN_KEYS = sorted({
    "output_dir", "state_dir", "http", "feeds", "accounts", "name", "api", "base_url", "pmcid",
    "client_id", "client_secret", "units", "end_date", "username", "password",
    "property_manager_code", "calendar_mode", "blocked_codes", "connect_timeout", "read_timeout",
    "retry_attempts", "retry_initial_wait", "retry_max_wait", "summary", "past_days",
    "future_days", "uid_domain", "<<",
})
KNOWN_VALUES = ["hsapi", "escapianet", "all", "exclusive", "inclusive", "batch", "per_unit", "UO",
                "https://example.org", "http://127.0.0.1:1", "http://example.org", "${DEMO_CLIENT_ID}",
                "${UNSET_VARIABLE}", "demo", "Demo", "", " ", "0", "../output", "../state", "."]


def _yaml_printable(char: str) -> bool:
    return not yaml.reader.Reader.NON_PRINTABLE.search(char)


# Text the YAML reader accepts and that holds no line break a message could carry over
# (see test_config_problem_lines_with_line_breaks for the latter).
SAFE_CHAR = st.characters(codec="utf-8").filter(
    lambda c: _yaml_printable(c) and c not in LINE_BREAKS and c != "\0"
)
SAFE_TEXT = st.text(SAFE_CHAR, max_size=20)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2, 2000),
    st.floats(allow_nan=True, allow_infinity=True), SAFE_TEXT, st.sampled_from(KNOWN_VALUES),
    st.dates(),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), SAFE_TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-config") / "accounts.yaml"


def _dir_value_crashes(value) -> bool:
    """Whether an output_dir/state_dir value hits the known _resolve_dir crash (see
    test_config_dir_values_never_crash); other properties leave such inputs to that test."""
    return isinstance(value, str) and (
        "\0" in value or value.startswith("~") or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    )


def _skip_known_dir_crash(doc) -> None:
    if isinstance(doc, dict):
        assume(not any(_dir_value_crashes(doc.get(key)) for key in ("output_dir", "state_dir")))


def check_load(path, text: str, environ=ENVIRON) -> Config | None:
    """Write ``text`` and load it: a Config, or a ConfigError of well-formed lines."""
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path, environ)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        for line in exc.problems:
            assert len(line.splitlines()) == 1, f"problem spans lines: {line!r}"
            assert PROBLEM_LINE.fullmatch(line), f"malformed problem line: {line!r}"
            assert line.startswith(str(path)), line
        return None
    assert isinstance(config, Config)
    assert config.accounts
    assert len({a.name for a in config.accounts}) == len(config.accounts)
    assert config.output_dir.is_absolute() and config.state_dir.is_absolute()
    assert not config.state_dir.is_relative_to(config.output_dir)
    assert not config.output_dir.is_relative_to(config.state_dir)
    return config


def _dump(doc, flow: bool, unicode: bool) -> str:
    return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)


def test_the_example_config_is_valid(config_path):
    """The base that the mutation tests start from."""
    assert check_load(config_path, EXAMPLE_TEXT) is not None


@fuzz(120)
@given(text=st.text(st.characters(codec="utf-8").filter(_yaml_printable), max_size=200))
@example(text="")
@example(text="[1")
@example(text="a: &a [*a]")
@example(text="<<: 1")
@example(text="? [a]\n: b")
@example(text="a: !!binary xx")
@example(text="- 1\n- 2")
def test_config_random_text(config_path, text):
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        doc = None
    _skip_known_dir_crash(doc)
    check_load(config_path, text)


@fuzz(30)
@given(text=st.text(max_size=60))
@example(text="\x01")
def test_config_any_text(config_path, text):
    check_load(config_path, text)


@fuzz(120)
@given(doc=VALUES | st.dictionaries(KEYS, VALUES, max_size=6), flow=st.booleans(), unicode=st.booleans())
def test_config_structured_yaml(config_path, doc, flow, unicode):
    _skip_known_dir_crash(doc)
    check_load(config_path, _dump(doc, flow, unicode))


def _paths(value, prefix=()):
    """Every key path in a plain document: dict keys and list indexes."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, prefix + (index,))
    return found


def _mutate(doc, path, operation, key, value):
    """Apply one mutation at ``path`` (in place; return the new root)."""
    if not path:
        return value if operation == "retype" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "remove":
        del parent[last]
    elif operation == "retype":
        parent[last] = value
    elif isinstance(parent[last], dict):
        parent[last][key] = value  # "add": a new (often unknown) key
    elif isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return doc


@fuzz(150)
@given(data=st.data(), flow=st.booleans(), unicode=st.booleans(),
       unset=st.sets(st.sampled_from(sorted(ENVIRON))))
def test_config_mutated_example(config_path, data, flow, unicode, unset):
    doc = json.loads(json.dumps(EXAMPLE_DOC))  # a deep copy
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        path = data.draw(st.sampled_from(_paths(doc)), label="path")
        operation = data.draw(st.sampled_from(["remove", "add", "retype"]), label="operation")
        key = data.draw(KEYS, label="key")
        value = data.draw(VALUES, label="value")
        doc = _mutate(doc, path, operation, key, value)
    _skip_known_dir_crash(doc)
    environ = {k: v for k, v in ENVIRON.items() if k not in unset}
    check_load(config_path, _dump(doc, flow, unicode), environ)


@fuzz(100)
@given(data=st.data())
def test_config_example_with_lines_dropped_or_repeated(config_path, data):
    lines = EXAMPLE_TEXT.splitlines(keepends=True)
    kept = data.draw(st.lists(st.sampled_from(range(len(lines))), max_size=len(lines) + 5), label="lines")
    check_load(config_path, "".join(lines[i] for i in kept))


@fuzz(30)
@given(key=st.text(st.sampled_from("ab" + LINE_BREAKS), min_size=1, max_size=6))
@example(key="\n")
def test_config_problem_lines_with_line_breaks(config_path, key):
    doc = {**EXAMPLE_DOC, key: 1}
    check_load(config_path, _dump(doc, False, True))


@fuzz(30)
@given(value=st.one_of(TEXT_WITH_SURROGATES, st.text(max_size=10).map(lambda s: "~" + s)),
       key=st.sampled_from(["output_dir", "state_dir"]))
@example(value="\0", key="output_dir")
def test_config_dir_values_never_crash(config_path, value, key):
    doc = {**EXAMPLE_DOC, key: value}
    check_load(config_path, _dump(doc, False, False))


# -- 2. HSAPI JSON decoder ---------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT_WITH_SURROGATES
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(ANY_CHAR, max_size=8), children, max_size=4),
    max_leaves=25,
)
SUMMARY_KEYS = st.sampled_from(["nativePMSID", "code", "name", "headline", "$id", "other"])
SUMMARY = st.dictionaries(SUMMARY_KEYS, JSON_SCALARS | JSON_VALUES, max_size=5) | JSON_VALUES
UNIT_PAGE = st.fixed_dictionaries(
    {"results": st.lists(SUMMARY, max_size=5)},
    optional={"totalCount": JSON_SCALARS, "$id": JSON_SCALARS},
)
DATE_TEXT = st.one_of(
    st.dates().map(D.isoformat),
    st.tuples(st.dates(), st.sampled_from(["", "T00:00:00", "T00:00:00.000", "Z", "+02:00", "T12:00:00",
                                           " ", "T00:00:00Z"])).map(lambda t: t[0].isoformat() + t[1]),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z"),
    JSON_SCALARS,
)
NON_AVAILABILITY_ITEM = st.one_of(
    st.fixed_dictionaries({"dateRange": st.fixed_dictionaries(
        {}, optional={"startDate": DATE_TEXT, "endDate": DATE_TEXT, "$id": JSON_SCALARS})}),
    JSON_VALUES,
)


def _units_ok(result) -> None:
    units, total, problems = result
    assert total is None or (isinstance(total, int) and not isinstance(total, bool))
    assert all(isinstance(p, str) for p in problems)
    for unit in units:
        assert isinstance(unit.id, str) and unit.id
        assert isinstance(unit.name, str) and isinstance(unit.code, str)


@fuzz(200)
@given(body=st.binary(max_size=300))
@example(body=b"[" * 100_000)
@example(body=b'"\\ud800"')
@example(body=b"1" * 5000)
@example(body=b"\xff\xfe{\x00}\x00")
def test_parse_json_any_bytes(body):
    try:
        parse_json(body, "Op")
    except SourceError as exc:
        assert str(exc).startswith("Op: ")


@fuzz(200)
@given(value=JSON_VALUES | UNIT_PAGE | st.lists(NON_AVAILABILITY_ITEM, max_size=4))
def test_hsapi_decoders_any_json_value(value):
    body = json.dumps(value).encode()  # ensure_ascii: lone surrogates travel as \udxxx
    decoded = parse_json(body, "Op")
    for candidate in (value, decoded):
        with contextlib.suppress(SourceError):
            _units_ok(parse_unit_page(candidate))
        try:
            pairs, _ = parse_nonavailability(candidate, "GetUnitNonAvailability")
        except SourceError:
            continue
        assert all(isinstance(s, D) and isinstance(e, D) for s, e in pairs)


EDGE_DATES = st.sampled_from([D.min, D.min + ONE_DAY, D.max, D.max - ONE_DAY, D(9999, 1, 1),
                              D(1, 12, 31), D(2026, 2, 28), D(2024, 2, 29)])
ANY_DATE = EDGE_DATES | st.dates()


@fuzz(200)
@given(pairs=st.lists(st.tuples(ANY_DATE, ANY_DATE) | ANY_DATE.map(lambda d: (d, d)), max_size=8),
       suffix=st.sampled_from(["", "T00:00:00", "T00:00:00.0000000", "Z", "-10:00"]))
def test_nonavailability_to_ranges(pairs, suffix):
    """HsapiSource.calendar's conversion, for both readings of endDate."""
    body = json.dumps([{"$id": str(i), "dateRange": {"startDate": s.isoformat() + suffix,
                                                     "endDate": e.isoformat() + suffix}}
                       for i, (s, e) in enumerate(pairs)]).encode()
    if any(e < s or D.min in (s, e) for s, e in pairs):  # unclear: the unit fails, nothing is dropped
        with pytest.raises(SourceError):
            parse_nonavailability(parse_json(body, "Op"), "GetUnitNonAvailability")
        return
    decoded, empty = parse_nonavailability(parse_json(body, "Op"), "GetUnitNonAvailability")
    assert decoded == pairs and empty == []
    for mode in ("exclusive", "inclusive"):
        for start, end in decoded:
            converted = range_from_api(start, end, mode)
            if end < start or start == D.max:
                assert converted is None
                continue
            assert isinstance(converted, BlockedRange)
            assert converted.end > converted.start == start
            last_night = end if (mode == "inclusive" or end == start) else end - ONE_DAY
            # every night the API reports is blocked (at date.max the last one is unrepresentable)
            assert converted.end - ONE_DAY == min(last_night, D.max - ONE_DAY)


# -- 3. DailyAvailability decoder --------------------------------------------------------------

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
EVRN = "http://www.escapia.com/EVRN/2007/02"
KNOWN_CODES = "AUIO"
BLOCKED_CODES = st.one_of(
    st.sampled_from(["UO", "U", "O", "UIO", "UI", "I", "OU"]),
    st.lists(st.sampled_from("BCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=5, unique=True).map("".join),
)
DAILY = st.text(st.sampled_from("AUIOX \n"), max_size=60)


def _segment_answer(start: str | None, daily: str | None, end: str | None) -> bytes:
    """A UnitCalendarAvail SOAP answer holding one segment, built with ElementTree."""
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    answer = ET.SubElement(body, f"{{{EVRN}}}EVRN_UnitCalendarAvailRS")
    holder = ET.SubElement(answer, f"{{{EVRN}}}UnitCalendarAvailSegments", UnitCode="1911-1")
    segment = ET.SubElement(holder, f"{{{EVRN}}}UnitCalendarAvailSegment")
    if start is not None:
        segment.set("StartDate", start)
    if end is not None:
        segment.set("EndDate", end)
    if daily is not None:
        ET.SubElement(segment, f"{{{EVRN}}}DailyAvailability").text = daily
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def _decode(start, daily, end, blocked_codes) -> tuple[DailyDecoder, list[BlockedRange]]:
    answer = parse_answer(_segment_answer(start, daily, end), "UnitCalendarAvail")
    decoder = DailyDecoder("acct", blocked_codes)
    calendar = decoder.calendar(parse_unit_calendar(answer, "1911-1"), "acct/1911-1")
    letters = "".join((daily or "").split())
    assert calendar.covered == ((D.fromisoformat(start), D.fromisoformat(start) + dt.timedelta(days=len(letters))),)
    return decoder, list(calendar.ranges)


def _check_daily(start: D, daily: str, blocked_codes: str, decoder: DailyDecoder,
                 ranges: list[BlockedRange]) -> None:
    letters = "".join(daily.split())  # whitespace inside the string carries no night
    blocked = {start + dt.timedelta(days=i) for i, c in enumerate(letters)
               if c in blocked_codes or c not in KNOWN_CODES}
    nights = [r.start + dt.timedelta(days=k) for r in ranges for k in range(r.nights)]
    assert set(nights) == blocked
    assert len(nights) == len(blocked), "ranges overlap"
    ordered = sorted(ranges)
    assert all(a.end <= b.start for a, b in zip(ordered, ordered[1:], strict=False)), "ranges overlap"
    for r in ranges:
        assert r.start in blocked, f"range starts on a free night: {r}"
        code = letters[(r.start - start).days]
        if r.start > D.min and r.start - ONE_DAY in blocked:  # touching the previous range: only before a new stay
            assert code == "O", f"blocked run split before {code!r} at {r.start}"
    assert decoder.reported == {c for c in letters if c not in KNOWN_CODES}


@fuzz(250)
@given(start=st.dates(max_value=D.max - dt.timedelta(days=61)) | st.sampled_from(
           [D.min, D.max - dt.timedelta(days=61), D(2024, 2, 29)]),
       daily=DAILY, blocked_codes=BLOCKED_CODES,
       end=st.none() | st.dates(max_value=D(9000, 1, 1)).map(D.isoformat) | st.sampled_from(["", "junk"]))
@example(start=D(2026, 1, 1), daily="UOO", blocked_codes="UO", end=None)
@example(start=D(2026, 1, 1), daily="  \n ", blocked_codes="UO", end=None)
def test_daily_availability(start, daily, blocked_codes, end):
    try:
        decoder, ranges = _decode(start.isoformat(), daily, end, blocked_codes)
    except SourceError:
        letters = "".join(daily.split())
        stated = (D.fromisoformat(end) - start).days if end not in (None, "", "junk") else 0
        assert not letters or len(letters) < stated, "SourceError for a usable string"
        return
    _check_daily(start, daily, blocked_codes, decoder, ranges)


@fuzz(60)
@given(start=st.one_of(st.text(max_size=12), st.none(), st.dates().map(lambda d: d.isoformat() + "T01:00:00")),
       daily=st.none() | DAILY)
def test_daily_availability_bad_segment(start, daily):
    """A segment without a usable StartDate is a SourceError, never a guess."""
    try:
        parse_api_date(start, "StartDate")
    except SourceError:
        pass
    else:
        assume(False)  # a usable date: covered above
    with pytest.raises(SourceError):
        _decode(start, daily, None, "UO")


@fuzz(30)
@given(start=st.dates(min_value=D.max - dt.timedelta(days=60)), daily=DAILY, blocked_codes=BLOCKED_CODES)
@example(start=D(9999, 12, 31), daily="U", blocked_codes="UO")
def test_daily_availability_near_date_max(start, daily, blocked_codes):
    try:
        decoder, ranges = _decode(start.isoformat(), daily, None, blocked_codes)
    except SourceError:
        return
    _check_daily(start, daily, blocked_codes, decoder, ranges)


# -- 4. unit id -> file name -------------------------------------------------------------------

NASTY_IDS = st.one_of(
    TEXT_WITH_SURROGATES,
    st.text(st.sampled_from("aZ09._-~/\\\0 .:ü\u0301\ufb01"), max_size=12),
    st.text(st.sampled_from("ab.-"), min_size=95, max_size=110),
    st.sampled_from(["", ".", "..", "../x", "a/../../b", ".hidden", "-rf", "CON", "a" * 100, "a" * 101,
                     "unit~0123456789abcdef", "x" * 5000]),
)


def _check_name(name: str) -> None:
    assert name.endswith(".ics")
    assert name.isascii() and name.isprintable()
    assert not any(c in name for c in "/\\\0")
    assert not name.startswith(".")
    assert name not in (".", "..") and name[:-4] not in (".", "..", "")
    assert ".." not in name[:-4]  # "0." -> "0..ics" is a plain name, not a parent reference
    assert len(name) <= 100 + len(".ics")
    assert os.path.basename(name) == name == os.path.normpath(name)
    folder = os.path.realpath("/srv/feeds/acct")
    assert os.path.dirname(os.path.realpath(os.path.join(folder, name))) == folder


@fuzz(300)
@given(unit_id=NASTY_IDS)
@example(unit_id="\ud800")
@example(unit_id="..")
def test_feed_filename_stays_in_its_folder(unit_id):
    _check_name(feed_filename(unit_id))


@fuzz(150)
@given(ids=st.sets(NASTY_IDS, max_size=40))
def test_feed_filename_is_injective(ids):
    names = {feed_filename(i) for i in ids}
    assert len(names) == len(ids)


# -- 5. renderer -------------------------------------------------------------------------------


@st.composite
def windows_and_ranges(draw):
    """A feed window and ranges around it, some crossing or outside its edges."""
    start = draw(st.dates(min_value=D(1900, 1, 1), max_value=D(9000, 1, 1)) | st.just(D(2026, 11, 16)))
    days = draw(st.integers(1, 1100))
    window = FeedWindow(start, start + dt.timedelta(days=days))
    pairs = draw(st.lists(st.tuples(st.integers(-60, days + 60), st.integers(1, 120)), max_size=25))
    ranges = [BlockedRange(start + dt.timedelta(days=a), start + dt.timedelta(days=a + n)) for a, n in pairs]
    return window, ranges


def _nights(start: D, end: D) -> set[D]:
    return {start + dt.timedelta(days=k) for k in range((end - start).days)}


def _check_ics(raw: bytes) -> None:
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "a bare CR or LF"
    assert max(len(line) for line in lines) <= 75
    raw.decode("utf-8")


def _events(raw: bytes) -> list[tuple[D, D]]:
    """(DTSTART, DTEND) of every event, checked to agree between icalendar and vobject."""
    calendar = icalendar.Calendar.from_ical(raw)
    by_icalendar = [(e.decoded("dtstart"), e.decoded("dtend")) for e in calendar.walk("VEVENT")]
    parsed = vobject.readOne(raw.decode("utf-8"))
    by_vobject = [(e.dtstart.value, e.dtend.value) for e in parsed.contents.get("vevent", [])]
    assert by_icalendar == by_vobject
    for start, end in by_icalendar:
        assert type(start) is D and type(end) is D  # all-day: dates, never datetimes
    return by_icalendar


STAMP = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                     timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-10))]))


@fuzz(120)
@given(case=windows_and_ranges(), stamp=STAMP)
def test_render_blocks_exactly_the_input_nights(case, stamp):
    window, ranges = case
    blocks = feed_blocks(ranges, window)
    raw = render_feed("acct", Unit("u1", "Unit 1"), blocks, FeedSettings(), stamp)
    _check_ics(raw)
    events = _events(raw)
    expected = set().union(*(_nights(r.start, r.end) for r in ranges)) & _nights(window.start, window.end)
    shown = [n for start, end in events for n in _nights(start, end)]
    assert set(shown) == expected
    assert len(shown) == len(expected), "events overlap"
    assert all(end > start for start, end in events)
    assert all(a[1] <= b[0] for a, b in zip(events, events[1:], strict=False)), "events out of order"
    uids = [str(e["uid"]) for e in icalendar.Calendar.from_ical(raw).walk("VEVENT")]
    assert len(set(uids)) == len(uids)


NAME_TEXT = st.text(max_size=300)  # any character but lone surrogates: control chars included


@fuzz(120)
@given(name=NAME_TEXT, code=st.text(max_size=20),
       # ids holding control characters: test_render_unit_id_fallback_with_control_chars
       unit_id=st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20),
       summary=st.text(max_size=40).filter(lambda s: re.search(r"\S", s)))
@example(name="a\r\nEND:VCALENDAR\r\n", code="", unit_id="x", summary="Not available")
@example(name="\x00\x85\u2028", code="", unit_id="", summary="Not available")
@example(name="é" * 300, code="", unit_id="1", summary=";,\\:")
def test_render_any_unit_name(name, code, unit_id, summary):
    unit = Unit(unit_id, name, code)
    window = FeedWindow(D(2026, 1, 1), D(2026, 3, 1))
    blocks = feed_blocks([BlockedRange(D(2026, 1, 5), D(2026, 1, 9))], window)
    raw = render_feed("acct", unit, blocks, FeedSettings(summary=summary), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    _check_ics(raw)
    assert _events(raw) == [(D(2026, 1, 5), D(2026, 1, 9))]
    title = display_name(unit)
    assert title and len(title.splitlines()) == 1 and not re.search(r"[\x00-\x1f\x7f-\x9f]", title)
    # vobject unescapes NAME and X-WR-CALNAME; icalendar >= 7.2 returns them still escaped.
    parsed = vobject.readOne(raw.decode("utf-8"))
    assert parsed.contents["name"][0].value == parsed.x_wr_calname.value == title
    assert len(parsed.vevent_list) == 1


@fuzz(30)
@given(name=TEXT_WITH_SURROGATES)
@example(name="\ud800")
def test_render_unit_name_from_hsapi_json(name):
    body = json.dumps({"results": [{"nativePMSID": "1", "name": name + "x"}], "totalCount": 1}).encode()
    units, _, _ = parse_unit_page(parse_json(body, "SearchUnitSummaries"))
    raw = render_feed("acct", units[0], [], FeedSettings(), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    _check_ics(raw)


@fuzz(30)
@given(native_id=st.text(st.sampled_from("\n\r\x00\x1f\x85\u2028 \t"), min_size=1, max_size=4))
@example(native_id="\n")
def test_render_unit_id_fallback_with_control_chars(native_id):
    body = json.dumps({"results": [{"nativePMSID": native_id}], "totalCount": 1}).encode()
    units, _, _ = parse_unit_page(parse_json(body, "SearchUnitSummaries"))
    raw = render_feed("acct", units[0], [], FeedSettings(), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    _check_ics(raw)
    title = display_name(units[0])
    assert len(title.splitlines()) == 1 and not re.search(r"[\x00-\x1f\x7f-\x9f]", title)
    assert vobject.readOne(raw.decode("utf-8")).contents["name"][0].value == title
