"""The sandbox's HTTP plumbing: one request handler routing to the control API (``/_sandbox/``),
channel calendar exports (``/_channels/``, sandbox/channels.py), EscapiaNET
(``/EVRNService.svc``, ``/EVRNContentService.svc``) or HSAPI (everything else).

Every API request (not the control API) is appended to ``Sandbox.requests`` before it is
answered: ``{"method", "path", "op", "unit", "status", "faults", "headers"}`` with Authorization
redacted; ``status`` is None when a fault reset the connection, ``faults`` names the injected
faults that changed the answer (:mod:`.faults`). Request bodies are never logged (they hold
EscapiaNET's MessagePassword). Answers are written piece by piece, so that a fault can pad
them cheaply (``Answer.runs``), send them chunked, or trickle them byte by byte.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from escapia_ical.sandbox import control, escapianet, hsapi
from escapia_ical.sandbox.faults import Answer
from escapia_ical.sandbox.hsapi import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox

JSON_TYPE = "application/json; charset=utf-8"
PIECE = 65536  # bytes per write (and per chunk of a chunked answer)


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EscapiaSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        sb: Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        path = unquote(split.path)
        if path.startswith("/dragomanadapter/"):
            path = path[len("/dragomanadapter"):]
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            status, payload = control.handle(sb, method, path, query, raw)
            self._send(sb, Answer(status, _json(payload), JSON_TYPE, {}, "control"))
            return
        if path.startswith("/_channels/") and path.endswith(".ics") and method == "GET":
            # A channel's calendar export (sandbox/channels.py): not Escapia, not logged as it.
            status, body, extra = sb.channels.serve(path[len("/_channels/"):-len(".ics")], self.headers)
            self._send(sb, Answer(status, body, "text/calendar; charset=utf-8", extra, "channel"))
            return
        sb.entered()  # how many API requests are in flight at once (a measure, not a behaviour)
        try:
            self._serve_api(sb, method, path, query, raw)
        finally:
            sb.left()

    def _serve_api(self, sb: Sandbox, method: str, path: str, query: dict, raw: bytes) -> None:
        ctx: dict = {"op": None, "unit": None, "faults": []}
        api = "soap" if path in escapianet.ENDPOINTS else "hsapi"
        if api == "soap":
            status, data, extra = escapianet.serve(sb, method, path, raw, self.headers, ctx)
            content_type = escapianet.CONTENT_TYPE
        else:
            try:
                status, payload, extra = sb._serve_hsapi(method, path, query, raw, self.headers, ctx)
            except ApiError as exc:
                payload = {"status": exc.status, "message": exc.message}
                status, extra = exc.status, exc.headers
            data, content_type = _json(hsapi.with_ids(payload)), JSON_TYPE
        answer = sb.faults.apply(ctx, Answer(status, data, content_type, extra, api, path=path))
        headers = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in self.headers.items()}
        with sb._lock:  # logged before answering, so a client sees its request in the log
            sb.requests.append({"method": method, "path": path, "op": ctx["op"], "unit": ctx["unit"],
                                "status": None if answer.reset else answer.status,
                                "faults": ctx["faults"], "headers": headers})
        if answer.delay:
            time.sleep(answer.delay)
        if answer.reset:
            self._reset()
            return
        try:
            self._send(sb, answer)
        except OSError:  # the client gave up (e.g. its read timeout passed during a delay)
            self.close_connection = True

    def _send(self, sb: Sandbox, answer: Answer) -> None:
        length = len(answer.body) + sum(count for _, _, count in answer.runs)
        headers = {"Server": self.version_string(), "Date": self.date_time_string(),
                   "Content-Type": answer.content_type}
        if answer.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(length if answer.announced_length is None
                                            else answer.announced_length)
        headers.update(answer.headers)
        reason = self.responses.get(answer.status, ("",))[0]
        head = f"{self.protocol_version} {answer.status} {reason}\r\n" + "".join(
            f"{key}: {value}\r\n" for key, value in headers.items()) + "\r\n"
        seconds, part = answer.trickle or (0.0, "")
        self._write(sb, head.encode("latin-1"), seconds if part == "headers" else 0.0)
        for piece in _chunked(_pieces(answer)) if answer.chunked else _pieces(answer):
            self._write(sb, piece, seconds)
        if answer.announced_length is not None and answer.announced_length != length:
            self.close_connection = True  # the rest never comes

    def _write(self, sb: Sandbox, data: bytes, trickle: float) -> None:
        """Send ``data``; with ``trickle``, one byte every ``trickle`` seconds (until the
        client gives up or the sandbox stops)."""
        if not trickle:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            if sb._closed:
                raise ConnectionAbortedError("the sandbox stopped")
            self.wfile.write(data[i:i + 1])
            time.sleep(trickle)

    def _reset(self) -> None:
        """Close the connection with a TCP RST, without a byte of answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the descriptor goes when rfile lets go of it, just below
            self.rfile.close()
        except OSError:
            pass


def _pieces(answer: Answer) -> Iterator[bytes]:
    """Yield the answer's body with its runs inserted, in pieces of at most PIECE bytes."""
    at = 0
    for offset, byte, count in sorted(answer.runs):
        yield from _split(answer.body[at:offset])
        block = byte * min(count, PIECE)
        for _ in range(count // PIECE):
            yield block
        if count % PIECE:
            yield block[:count % PIECE]
        at = offset
    yield from _split(answer.body[at:])


def _split(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), PIECE):
        yield data[start:start + PIECE]


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Frame each (non-empty) piece as an HTTP/1.1 chunk, then the last chunk."""
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"
