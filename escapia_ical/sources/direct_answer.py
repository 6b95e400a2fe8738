"""How :class:`~escapia_ical.sources.transport.Direct` reads an answer: with http.client, as
urllib3 does under requests' adapter, less two costs that change nothing we read.

- **The header block.** http.client hands it to the email package's parser (55 µs an
  answer here, a tenth of a cold sync's fetching). :class:`Answer` reads it with
  http.client's own limits (line length, number of lines) and, where every line is a plain
  ``Name: value`` (every answer Escapia and the sandbox send), stores the pairs exactly as
  the email parser would (name as sent, value without its leading blanks, in order, through
  the Message's own ``set_raw``). Any other block (a folded line, one without a colon, a
  bare LF, a "From " line) goes to http.client's own ``parse_headers`` unchanged.
- **A plain body.** For an answer with one Content-Length, no Transfer-Encoding and no
  Content-Encoding, :class:`PlainBody` stands in for urllib3's ``HTTPResponse`` under
  requests' ``Response``: the same reads of the http.client answer, the same check that the
  whole length came (urllib3's ``enforce_content_length``) and the same errors (urllib3's
  ``_error_catcher``, which requests' ``iter_content`` turns into its own; a short read
  followed by another, and its bytes kept for the next read after a failure), without
  urllib3's decoder set-up and general buffer. Any other answer (chunked,
  compressed, a length repeated or not a number, a 1xx/204/304 or a HEAD) is read by
  urllib3's ``HTTPResponse`` as before.

``tests/unit/test_transport.py`` sends every scripted answer through requests' adapter (the
stock http.client and urllib3) and through Direct, and compares the results and errors.
Both together: 0.83 of the CPU a calendar request cost (paired A/B in one process against
the sandbox, median of 20 rounds of 200).
"""

from __future__ import annotations

import email.parser
import http.client
import re
import ssl
from collections.abc import Iterator
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse
from urllib3 import exceptions as urllib3_exceptions
from urllib3._collections import HTTPHeaderDict

_OBSOLETE_FOLD = re.compile(r"(?:(?<![ \t])[ \t]+)?\r\n[ \t]+")  # as urllib3 unfolds header values
_MAX_LINE, _MAX_HEADERS = 65536, 100  # http.client's own limits (its _MAXLINE, _MAXHEADERS)
# The email parser's header name ([\041-\071\073-\176]), a colon, blanks, a value, CRLF.
_PLAIN_HEADER = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*)\r\n")


class Answer(http.client.HTTPResponse):
    """http.client's answer, its header block parsed as described in the module."""

    def begin(self) -> None:
        # http.client's HTTPResponse.begin (CPython 3.11-3.13, unchanged between them), with
        # parse_headers(self.fp) replaced by _headers(self.fp).
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)  # a 100 Continue's headers are skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _headers(self.fp)
        coding = self.headers.get("transfer-encoding")
        self.chunked = bool(coding) and coding.lower() == "chunked"
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 \
                or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


def _header_lines(fp: Any) -> list[bytes]:
    """The header block's lines, the blank (or missing) last one included, as http.client's
    ``_read_headers`` reads them."""
    lines = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def _headers(fp: Any) -> http.client.HTTPMessage:
    lines = _header_lines(fp)
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        plain = _PLAIN_HEADER.fullmatch(line)
        if plain is None:  # as http.client.parse_headers
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        message.set_raw(plain[1].decode("iso-8859-1"), plain[2].decode("iso-8859-1"))
    return message


def response(prepared: requests.PreparedRequest, answer: http.client.HTTPResponse,
             connection: Any) -> requests.Response:
    """requests' Response for ``answer`` (to ``prepared``, on ``connection``), as urllib3's
    HTTPConnection.getresponse and requests' HTTPAdapter.build_response make it, without
    the cookie jar (none is kept); its body not read yet."""
    items = [(name, _OBSOLETE_FOLD.sub(" ", value) if "\r\n" in value else value)
             for name, value in answer.msg.items()]
    headers = HTTPHeaderDict(items)  # repeated names merged with ", ", the first one's case kept
    length = headers.get("content-length")
    raw: Any
    # (a Content-Length sent twice is merged into "2, 2": not digits, left to urllib3)
    if (length is not None and length.isascii() and length.isdigit() and answer.length is not None
            and "transfer-encoding" not in headers and "content-encoding" not in headers
            and answer.status >= 200 and answer.status not in (204, 304) and prepared.method != "HEAD"):
        # (http.client's int() of it: None past int()'s digit limit, as urllib3 reads it)
        raw = PlainBody(answer, connection, answer.length)
    else:
        # ``connection``: urllib3 closes it when reading the body fails, and requests'
        # close() has urllib3 close it when the body was not read to its end.
        raw = HTTPResponse(body=answer, headers=headers, status=answer.status,
                           version=answer.version, reason=answer.reason, preload_content=False,
                           decode_content=True, original_response=answer, enforce_content_length=True,
                           request_method=prepared.method, request_url=prepared.url, connection=connection)
    reply = requests.Response()
    reply.status_code = answer.status
    reply.headers = CaseInsensitiveDict(headers)
    reply.raw = raw
    reply.reason = answer.reason
    reply.url = prepared.url
    reply.request = prepared
    reply.encoding = get_encoding_from_headers(reply.headers)
    return reply


class PlainBody:
    """A body of ``length`` bytes, neither chunked nor compressed, read for requests'
    ``Response`` as urllib3's ``HTTPResponse`` reads it (see the module)."""

    def __init__(self, answer: http.client.HTTPResponse, connection: Any, length: int) -> None:
        self._answer = answer
        self._connection = connection
        self._left = length
        self._read_so_far = 0
        self._held = b""  # read, not handed out yet (urllib3's _decoded_buffer)

    def stream(self, amt: int | None, decode_content: bool = True) -> Iterator[bytes]:
        if amt == 0:  # as urllib3's stream()
            return
        while not self._answer.isclosed() or self._held:
            data = self._read(amt)
            if data:
                yield data

    def _read(self, amt: int | None) -> bytes:
        # urllib3's HTTPResponse.read(amt) with no decoder: a short read is followed by
        # another, and what came before a failing read is kept for the next call.
        if amt is not None and amt < 0:
            amt = None
        if amt is not None and len(self._held) >= amt:
            data, self._held = self._held[:amt], self._held[amt:]
            return data
        data = self._raw_read(amt)
        if amt is None:
            data, self._held = self._held + data, b""
            return data
        self._held += data
        while len(self._held) < amt and data and self._left:  # (none left: http.client has closed it)
            data = self._raw_read(amt)
            self._held += data
        data, self._held = self._held[:amt], self._held[amt:]
        return data

    def _raw_read(self, amt: int | None) -> bytes:
        clean = False
        try:  # as urllib3's HTTPResponse._raw_read inside its _error_catcher
            try:
                data = self._answer.read(amt)
                if amt is not None and amt != 0 and not data:
                    self._answer.close()
                    if self._left:
                        raise urllib3_exceptions.IncompleteRead(self._read_so_far, self._left)
            except TimeoutError as exc:
                raise urllib3_exceptions.ReadTimeoutError(None, None, "Read timed out.") from exc  # type: ignore[arg-type]
            except ssl.SSLError as exc:
                raise urllib3_exceptions.SSLError(exc) from exc
            except urllib3_exceptions.IncompleteRead as exc:  # urllib3's own only, as its _error_catcher
                if exc.expected is not None and exc.partial is not None and exc.expected == -exc.partial:
                    message = "Response may not contain content."
                else:
                    message = f"Connection broken: {exc!r}"
                raise urllib3_exceptions.ProtocolError(message, exc) from exc
            except (http.client.HTTPException, OSError) as exc:
                raise urllib3_exceptions.ProtocolError(f"Connection broken: {exc!r}", exc) from exc
            clean = True
        finally:
            if not clean:  # nothing half-read is used again
                self.close()
        self._read_so_far += len(data)
        self._left -= len(data)
        return data

    def close(self) -> None:
        """Called by requests' Response.close() when the body was not read to its end: the
        connection is not used again (its unread rest would be taken for the next answer)."""
        self._answer.close()
        self._connection.close()
