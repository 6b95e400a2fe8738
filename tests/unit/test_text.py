"""TEXT escaping and folding (feeds/text.py): names and summaries read back the same by
icalendar, vobject and ical (allenporter), whatever special characters they hold."""

from __future__ import annotations

import datetime as dt
import re

import icalendar
import pytest
import vobject
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ical.calendar_stream import IcsCalendarStream
from ical_reference import TextValue

from escapia_ical.config import FeedSettings
from escapia_ical.feeds.ranges import feed_blocks
from escapia_ical.feeds.render import display_name, render_feed
from escapia_ical.feeds.text import escape_text, fold_content_lines
from escapia_ical.model import BlockedRange, FeedWindow, Unit

D = dt.date
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BLOCKS = feed_blocks([BlockedRange(D(2026, 1, 5), D(2026, 1, 9))], FeedWindow(D(2026, 1, 1), D(2026, 3, 1)))
CLIFF = "Cliff, Sea; View \\ Loft"
PROPERTIES = settings(deadline=None, database=None, max_examples=60,
                      suppress_health_check=[HealthCheck.too_slow])

# Everything TEXT escaping is about, plus multibyte characters: 2-byte, 3-byte, 4-byte (emoji,
# a ZWJ sequence), a combining mark, double quotes, and a literal backslash-n / backslash-N.
SPECIAL = [",", ";", "\\", "\\n", "\\N", "\\,", '"', ":", "é", "—", "🌊", "👩‍👩‍👧", "e\u0301", " "]
PIECES = st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")))
NAMES = st.lists(PIECES, max_size=120).map("".join)
# A summary may hold a line break (written \n); other control characters are no TEXT.
SUMMARIES = st.lists(st.one_of(PIECES, st.sampled_from(["\n", "\r\n"])), min_size=1, max_size=60).map("".join)


def rfc_unescape(value: str) -> str:
    """RFC 5545 §3.3.11 unescaping, in one pass: the test's oracle, independent of text.py."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def render(name: str, summary: str = "Not available") -> bytes:
    return render_feed("acct", Unit("u1", name), BLOCKS, FeedSettings(summary=summary), STAMP)


def icalendar_text(value) -> str:
    """A TEXT value as icalendar reads it: 6.x unescapes NAME and X-WR-CALNAME (vText),
    7.2 and later return them still escaped (vUnknown), so those are unescaped here."""
    if isinstance(value, icalendar.vText):
        return str(value)
    return rfc_unescape(value.to_ical().decode("utf-8"))


def names_and_summaries(raw: bytes) -> dict[str, list[tuple[str, str, list[str]]]]:
    """(NAME, X-WR-CALNAME, SUMMARYs) as each parser reads them."""
    by_icalendar = icalendar.Calendar.from_ical(raw)
    by_vobject = vobject.readOne(raw.decode("utf-8"))
    by_ical = IcsCalendarStream.calendar_from_ics(raw.decode("utf-8"))
    # ical keeps X-WR-CALNAME as an extra property, its raw (unfolded, still escaped) value.
    ical_calname = [rfc_unescape(p.value) for p in by_ical.extras if p.name.upper() == "X-WR-CALNAME"]
    assert len(ical_calname) == 1 and len(by_ical.name) == 1
    return {
        "icalendar": (icalendar_text(by_icalendar["NAME"]), icalendar_text(by_icalendar["X-WR-CALNAME"]),
                      [str(e["SUMMARY"]) for e in by_icalendar.walk("VEVENT")]),
        "vobject": (by_vobject.contents["name"][0].value, by_vobject.x_wr_calname.value,
                    [e.summary.value for e in by_vobject.vevent_list]),
        "ical": (by_ical.name[0], ical_calname[0], [e.summary for e in by_ical.events]),
    }


@pytest.mark.parametrize(("plain", "escaped"), [
    (CLIFF, "Cliff\\, Sea\\; View \\\\ Loft"),
    ("a\\nb", "a\\\\nb"),  # a literal backslash-n stays two characters
    ("a\\Nb", "a\\\\Nb"),  # not a line break either (icalendar 7 makes it one)
    ("line\nbreak\r\nand\rcr", "line\\nbreak\\nand\\ncr"),
    ("\\,", "\\\\\\,"),  # an escape-looking pair is escaped, not kept
    ('Pele\'s "Hideaway" 🌊 — é', 'Pele\'s "Hideaway" 🌊 — é'),
    ("", ""),
])
def test_escape_text(plain, escaped):
    assert escape_text(plain) == escaped
    assert TextValue(plain).to_ical() == escaped.encode()
    assert str(TextValue(plain)) == plain  # the plain value, for digests and comparisons


def test_feed_bytes_escape_name_and_summary():
    raw = render(CLIFF, summary="Not available, sorry; \\ closed")
    assert b"\r\nX-WR-CALNAME:Cliff\\, Sea\\; View \\\\ Loft\r\n" in raw
    assert b"\r\nNAME:Cliff\\, Sea\\; View \\\\ Loft\r\n" in raw
    # Escaped once, never twice, on every icalendar version.
    assert b"\r\nSUMMARY:Not available\\, sorry\\; \\\\ closed\r\n" in raw


def test_literal_backslash_n_is_no_line_break():
    raw = render("Sea\\nView")
    assert b"\r\nX-WR-CALNAME:Sea\\\\nView\r\n" in raw
    for parser, (name, calname, _) in names_and_summaries(raw).items():
        assert name == calname == "Sea\\nView", parser


@PROPERTIES
@given(name=NAMES)
@example(name=CLIFF)
@example(name='Pele\'s "Hideaway" \\ Loft; A/C, 🌊 Sea\\nView')
@example(name="🌊\\," * 60)  # the longest name display_name keeps, all 4-byte and escapes
def test_any_name_reads_back_the_same_with_every_parser(name):
    raw = render(name)
    title = display_name(Unit("u1", name))
    for parser, (read_name, read_calname, _) in names_and_summaries(raw).items():
        assert (read_name, read_calname) == (title, title), parser


@PROPERTIES
@given(summary=SUMMARIES.filter(lambda s: s.strip()))
@example(summary="Not available, sorry; \\ closed\\n")
@example(summary="Owner \\N stay")  # icalendar 7's own escaping makes \N a line break
def test_any_summary_reads_back_the_same_with_every_parser(summary):
    raw = render("Unit", summary=summary)
    expected = summary.replace("\r\n", "\n")
    for parser, (_, _, summaries) in names_and_summaries(raw).items():
        assert summaries == [expected], parser


def fold_offsets(line: bytes) -> tuple[str, set[int]]:
    """Unfold one folded content line; return it and the offsets (in characters) of its folds.

    Every physical line must decode on its own, so no fold split a UTF-8 character.
    """
    physical = line.split(b"\r\n")
    assert all(len(p) <= 75 for p in physical), [len(p) for p in physical]
    assert all(p.startswith(b" ") for p in physical[1:])
    parts = [physical[0].decode("utf-8")] + [p[1:].decode("utf-8") for p in physical[1:]]
    offsets, total = set(), 0
    for part in parts[:-1]:
        total += len(part)
        offsets.add(total)
    return "".join(parts), offsets


def assert_folds_between_escapes(raw: bytes) -> None:
    for line in re.split(rb"\r\n(?! )", raw):
        text, folds = fold_offsets(line)
        index = 0
        while index < len(text):
            if text[index] == "\\":
                assert index + 1 not in folds, f"a fold splits {text[index:index + 2]!r} in {text!r}"
                index += 2
            else:
                index += 1


@PROPERTIES
@given(name=NAMES, pad=st.integers(0, 80))
@example(name="\\" * 8 + "," * 4, pad=53)  # icalendar 7.3 folds inside the 4th "\\"
@example(name="🌊\\," * 60, pad=0)
def test_folding_never_splits_a_character_or_an_escape(name, pad):
    raw = render("x" * pad + name, summary="🌊, \\" * 40)
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    assert_folds_between_escapes(raw)


def test_fold_content_lines_refolds_a_split_escape():
    # 61 x's after "SUMMARY:" and 7 backslashes reach octet 74: the library may fold there,
    # between the two characters of the 4th escaped backslash.
    split = b"SUMMARY:" + b"x" * 59 + b"\\" * 7 + b"\r\n \\\\,\r\n"
    assert_folds_between_escapes(fold_content_lines(split))
    assert fold_content_lines(split).replace(b"\r\n ", b"") == split.replace(b"\r\n ", b"")
    with pytest.raises(AssertionError):
        assert_folds_between_escapes(split)


def test_unfolded_lines_are_left_alone():
    short = b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:" + b"a" * 61 + b"\r\nEND:VCALENDAR\r\n"
    assert fold_content_lines(short) == short
    long = b"SUMMARY:" + "é".encode() * 40 + b"\r\n"
    folded = fold_content_lines(long)
    assert folded.split(b"\r\n")[0] == b"SUMMARY:" + "é".encode() * 33  # 74 octets
    assert folded.replace(b"\r\n ", b"") == long
