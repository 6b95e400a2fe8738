"""iCalendar TEXT values, written the same way whatever the icalendar version.

RFC 5545 §3.3.11: in a TEXT value a backslash, ``;`` and ``,`` are escaped with a
backslash and a line break is written ``\\n``. The icalendar library cannot be left to do
it: 6.x escapes every property it writes as text, but 7.2 and later write NAME and the
properties it does not know (X-WR-CALNAME) verbatim, so ``Cliff, Sea; View \\ Loft`` is
cut at the comma by vobject and Radicale; and 7.x's own escaping turns a literal
backslash-N into a line break. So the escaping is ours (:func:`escape_text`), and the feed
renderer (feeds/render.py) writes the lines itself.

Folding is ours too (:func:`fold_content_lines`): icalendar folds at 75 octets but may
put the fold inside an escape sequence (after ``\\`` of ``\\\\``), which importers that
unescape before unfolding read wrongly.
"""

from __future__ import annotations

import re

# Octets of a content line's text on one physical line (a continuation line adds its
# leading space): what icalendar's folding keeps to, so a feed without escapes near a fold
# is byte-identical to the library's output.
FOLD_OCTETS = 74
_ESCAPES = {"\\": "\\\\", ";": "\\;", ",": "\\,", "\r\n": "\\n", "\n": "\\n", "\r": "\\n"}
_SPECIAL = re.compile(r"\r\n|[\\;,\r\n]")
_FOLD = re.compile(rb"\r\n[ \t]")


def escape_text(value: str) -> str:
    """Given a plain string, return it as an RFC 5545 TEXT value.

    ``\\`` becomes ``\\\\``, ``;`` ``\\;``, ``,`` ``\\,``, and a line break (CRLF, LF or a
    lone CR) ``\\n``, in one pass, so nothing is escaped twice and a literal backslash-n
    stays two characters (``\\\\n``). Other characters, multibyte ones included, are kept.
    """
    return _SPECIAL.sub(lambda match: _ESCAPES[match.group()], value)


def fold_content_lines(ical: bytes) -> bytes:
    """Given iCalendar bytes (CRLF lines, folded or not), return them folded again so no
    physical line exceeds 75 octets and no fold splits a UTF-8 character or a backslash
    escape (``\\\\``, ``\\;``, ``\\,``, ``\\n``).

    Unfolding first makes the result independent of how the library folded.
    """
    unfolded = _FOLD.sub(b"", ical)
    lines = unfolded.split(b"\r\n")
    if max(map(len, lines)) <= FOLD_OCTETS:  # most feeds: no line to fold
        return unfolded
    return b"\r\n".join(_fold(line) for line in lines)


def _fold(line: bytes) -> bytes:
    if len(line) <= FOLD_OCTETS:
        return line
    text = line.decode("utf-8")
    segments: list[str] = []
    current: list[str] = []
    size = 0
    index = 0
    while index < len(text):
        # A backslash and the character it escapes are one unit, never folded apart.
        width = 2 if text[index] == "\\" and index + 1 < len(text) else 1
        unit = text[index:index + width]
        octets = len(unit.encode("utf-8"))
        if current and size + octets > FOLD_OCTETS:
            segments.append("".join(current))
            current, size = [], 0
        current.append(unit)
        size += octets
        index += width
    segments.append("".join(current))
    return "\r\n ".join(segments).encode("utf-8")
