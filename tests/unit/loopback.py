"""A raw TCP server on loopback whose answers a test scripts byte by byte: for stalls,
trickles, keep-alive and redirects that no HTTP framework would produce on purpose."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

Answer = Callable[[socket.socket, bytes, int], None]  # (connection, request head, request number)


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each request (its head, read up to the
    blank line, and its body by Content-Length) to ``answer``. Records what arrived."""

    def __init__(self, answer: Answer | None = None, *, read_requests: bool = True,
                 wrap: Callable[[socket.socket], socket.socket] | None = None):
        self.answer = answer or (lambda conn, head, n: None)
        self.read_requests = read_requests
        self.wrap = wrap  # e.g. a TLS server context's wrap_socket, before anything is read
        self.connections = 0
        self.received: list[bytes] = []  # every byte that arrived, per connection
        self.closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            self.received.append(b"")
            threading.Thread(target=self._serve, args=(conn, len(self.received) - 1), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        with contextlib.suppress(OSError):  # ssl.SSLError too: a client refusing our certificate
            if self.wrap is not None:
                conn = self.wrap(conn)
            if not self.read_requests:
                self.answer(conn, b"", 0)
                return
            buffer, number = b"", 0
            while not self.closing.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                    self.received[index] += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                    self.received[index] += data
                buffer = buffer[length:]
                self.answer(conn, head, number)
                number += 1

    def close(self) -> None:
        self.closing.set()
        self._listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trickle(conn: socket.socket, data: bytes, seconds: float, closing: threading.Event) -> None:
    """Send ``data`` one byte every ``seconds`` until done, the client leaves or the test ends."""
    for i in range(len(data)):
        if closing.is_set():
            return
        conn.sendall(data[i:i + 1])
        time.sleep(seconds)


def ok(body: bytes = b"{}") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for the servers the tests start (PostgreSQL, S3)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
