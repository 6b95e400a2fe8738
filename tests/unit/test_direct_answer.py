"""sources/direct_answer.py: its header parse stores exactly what http.client's parse_headers
stores (or fails as it does) for any header block, and takes its shortcuts (no email parser,
no urllib3 body) only where the answer is plain. test_transport.py compares whole answers."""

from __future__ import annotations

import email.parser
import gzip
import http.client
import io

import hypothesis.strategies as st
import pytest
import urllib3
from hypothesis import given, settings
from loopback import RawServer, ok

from escapia_ical.sources import direct_answer, transport


def parsed(parse, block: bytes):
    try:
        message = parse(io.BytesIO(block))
    except http.client.HTTPException as exc:
        return type(exc).__name__, str(exc)
    return message.items(), message.get_all("content-length"), type(message)


# Lines built from what makes a header block unusual: colons, blanks, CR and LF alone, a
# "From " line, Latin-1 bytes, empty names and values.
PIECES = [b"X-A", b"content-length", b"Set-Cookie", b"From ", b":", b": ", b" ", b"\t", b"\r", b"\n",
          b"\r\n", b"\r\n ", b"1", b"caf\xe9", b"a b", b"\x00", b"=", b"\x7f"]
LINES = st.lists(st.sampled_from(PIECES), max_size=6).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=8), st.sampled_from([b"\r\n\r\n", b"\r\n", b"\n\n", b""]))
def test_any_header_block_is_stored_as_http_client_stores_it(lines, end):
    block = b"\r\n".join(lines) + end + b"body"
    assert parsed(direct_answer._headers, block) == parsed(http.client.parse_headers, block)


@pytest.mark.parametrize("block", [
    b"X-A: 1\r\nx-a:  2 \r\nX-Empty:\r\nContent-Length: 5\r\n\r\n",
    b"X-Long: " + b"a" * 65600 + b"\r\n\r\n",
    b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n",
    b"".join(b"X-%d: 1\r\n" % n for n in range(99)) + b"\r\n",
    b"X-A: 1\r\n Folded\r\n\r\n",
])
def test_limits_and_folding_as_http_client(block):
    assert parsed(direct_answer._headers, block) == parsed(http.client.parse_headers, block)


def test_a_plain_block_skips_the_email_parser_and_an_unusual_one_uses_it(monkeypatch):
    used = []
    real = email.parser.Parser

    def watched(*args, **kwargs):
        used.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(direct_answer.email.parser, "Parser", watched)
    direct_answer._headers(io.BytesIO(b"Server: x\r\nX-Tab:\t1 \r\nContent-Length: 2\r\n\r\n"))
    assert used == []
    direct_answer._headers(io.BytesIO(b"Server: x\r\n continued\r\n\r\n"))
    assert used == [1]


@pytest.mark.parametrize(("answer", "plain"), [
    (ok(b'{"a": 1}'), True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(gzip.compress(b"{}")), gzip.compress(b"{}")), False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", False),
])
def test_only_a_plain_body_skips_urllib3(monkeypatch, answer, plain):
    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    session = transport.new_session()
    with RawServer(lambda conn, head_, n: conn.sendall(answer)) as server, \
            session.send_request("GET", server.url, timeout=5) as reply:
        kind = type(reply.raw)
        reply.content  # noqa: B018 - read to the end
    session.close()
    assert kind is (direct_answer.PlainBody if plain else urllib3.HTTPResponse)
