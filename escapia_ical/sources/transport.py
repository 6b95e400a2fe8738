"""How a request reaches the server: straight over a kept-alive http.client connection, or
through requests' adapter when something needs it.

requests' adapter (urllib3's pool, its Retry and Timeout objects, its connection's request
and the adapter's response building with a cookie jar) costs about 0.4 ms of CPU a request
more than http.client does for the same bytes: 4 s of a cold sync of 10,000 units, with the
GIL held for it while the main thread renders and publishes. :class:`Direct` sends what
requests prepared (the same method, target, headers and body, head and body in one write:
``tests/unit/test_session.py`` compares the bytes on the wire) over one keep-alive
:mod:`http.client` connection per origin and thread, and reads the answer into a
``requests.Response`` as the adapter does (sources/direct_answer.py: urllib3's own
``HTTPResponse`` for a chunked or compressed body, a plain body read as it reads one, and
the header block parsed without the email package): the same body decoding (gzip,
deflate), length checks, header folding and errors while reading. An
error before the answer is raised as the adapter raises it, with the same innermost cause
(see :func:`_adapter_error`), and a connection closed or reset while sending still has its
answer read, as urllib3 does; ``tests/unit/test_transport.py`` compares both transports,
answer by answer and failure by failure. Known differences, none reaching a message: an
IPv6 zone id in a URL is not decoded (no Escapia URL has one), and urllib3's warning about
headers it cannot parse is not logged.

A request takes requests' adapter instead when an environment proxy applies to its URL, a
client certificate or ``verify=False`` is asked for, the CA bundle the environment names
does not exist (the adapter says so), its body is not bytes (or none), the adapter mounted
for it is not the stock one (a test's mock such as ``responses`` takes every request), or
the environment says ``ESCAPIA_ICAL_TRANSPORT=requests`` (a fallback, should a server or
middlebox ever disagree with http.client).

Both obey :func:`~escapia_ical.sources.watchdog.time_limit`: a connection reports to it on
connect and on every request, and its socket is duplicated for the watchdog before the TLS
handshake, as the adapter's watched connections do. As urllib3, a request is sent under
the connect timeout and its answer awaited under the read timeout. A kept-alive connection
is used again only after an answer read to its end without error (urllib3 closes it when a
read fails; an answer left open closes it before the next request: what is left unread
would be taken for the next answer), and one that the server closed while idle is noticed
(readable before a request is sent) and replaced.

TLS: urllib3's default context (the same protocol floor, ciphers and options as the
adapter's), certificates checked against certifi's bundle or ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE`` (read once per process and bundle), the host name checked by the ssl
module (never the certificate's common name).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import logging
import os
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util import ssl_
from urllib3.util.wait import wait_for_read

from escapia_ical.sources import watchdog
from escapia_ical.sources.direct_answer import Answer, response
from escapia_ical.sources.session import Session

# Each connection and request at -vv only, as urllib3 logs those it sends (logs.py sets the level).
log = logging.getLogger(__name__)
TRANSPORT_ENV = "ESCAPIA_ICAL_TRANSPORT"  # "requests": every request through requests' adapter
_MAX_LINES = 256  # header lines a connection remembers (putheader)
_STOCK_SEND = HTTPAdapter.send  # captured at import: a mock installed later is obeyed


class Direct:
    """One thread's kept-alive connections, one per origin (scheme, host, port, CA bundle)."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str, int, str], _Connection] = {}
        self._origins: dict[str, bool] = {}  # origin -> whether its settings allow Direct
        self._opened = itertools.count(1)

    def usable(self, session: Session, prepared: requests.PreparedRequest, origin: str,
               settings: dict[str, Any]) -> bool:
        """Return whether ``prepared`` (to ``origin``, whose adapter settings are
        ``settings``) can go straight over http.client (see the module)."""
        usable = self._origins.get(origin)
        if usable is None:
            usable = self._origins[origin] = _origin_usable(origin, settings)
        # A text body is left to the adapter: http.client would encode it as Latin-1, urllib3 as UTF-8.
        return (usable and isinstance(prepared.body, bytes | None)
                and type(session.get_adapter(origin)).send is _STOCK_SEND)

    def send(self, prepared: requests.PreparedRequest, *, timeout: Any,
             verify: bool | str) -> requests.Response:
        """Send ``prepared``; return the answer with its body not yet read (close it).
        ``timeout``: seconds, or (connect, read) seconds, as requests takes it."""
        if not isinstance(timeout, tuple):
            timeout = (timeout, timeout)
        parts = urlsplit(prepared.url)
        host = (parts.hostname or "").rstrip(".")  # as urllib3: no trailing dot in Host or SNI
        port = parts.port or (443 if parts.scheme == "https" else 80)
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
        key = (parts.scheme, host, port, bundle if parts.scheme == "https" else "")
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and (
                not connection.answered() or wait_for_read(connection.sock, 0.0)):
            # The last answer is still open (its rest would be read as this one's), or the
            # server closed the connection while it was idle (or sent what nobody asked for).
            connection.close()
        if connection is None:
            connection = (_TlsConnection(host, port, bundle) if parts.scheme == "https"
                          else _Connection(host, port))
            self._connections[key] = connection
        connection.timeouts = timeout
        watchdog.attach(connection)  # before connecting; connect() attaches its new socket
        connection.phase = "connect"
        try:
            if connection.sock is None:
                log.debug("Starting new %s connection (%d): %s:%s", parts.scheme.upper(), next(self._opened),
                          host, port)
                connection.connect()
            connection.phase = "send"  # under the connect timeout, as urllib3 sends
            connection.set_timeout(timeout[0])
            connection.send_whole(prepared.method or "GET", prepared.path_url, prepared.body,
                                  prepared.headers)
            connection.phase = "answer"
            connection.set_timeout(timeout[1])
            answer = connection.answer = connection.getresponse()
            log.debug('%s://%s:%s "%s %s HTTP/%s" %s %s', parts.scheme, host, port, prepared.method,
                      prepared.path_url, "1.0" if answer.version == 10 else "1.1", answer.status,
                      answer.length)
            return response(prepared, answer, connection)
        except BaseException as exc:  # nothing half-sent or half-read is ever used again
            connection.close()
            if not isinstance(exc, Exception):
                raise
            raise _adapter_error(exc, connection.phase) from None

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def new_session() -> Session:
    """Return a requests Session whose requests obey :func:`~.watchdog.time_limit`, sent by
    :class:`Direct` where it can (see above), reading the environment's proxies once per
    origin (see sources/session.py)."""
    session = Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, watchdog.WatchedAdapter())
    if os.environ.get(TRANSPORT_ENV, "").strip().lower() != "requests":
        session.direct = Direct()
    return session


class _Connection(http.client.HTTPConnection):
    """An http.client connection with connect and read timeouts, watched by the watchdog."""

    response_class = Answer  # http.client's, its headers read faster (sources/direct_answer.py)
    timeouts: tuple[float | None, float | None] = (30.0, 30.0)
    phase = "connect"  # where a request is: connect, handshake, send, answer (for its errors)
    answer: http.client.HTTPResponse | None = None  # the last one
    _timeout: tuple[object, float | None] | None = None  # (socket, the timeout set on it)

    _held: list[bytes] | None = None

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._lines: dict[tuple[str, str], bytes] = {}  # (name, value) -> the line put for them

    def connect(self) -> None:  # Direct.send has attached the connection to the watchdog
        self.sock = self._tcp()
        watchdog.attach(self)  # now with its socket

    def answered(self) -> bool:
        """Whether the last answer on this connection was read to its end (or closed)."""
        return self.answer is None or self.answer.isclosed()

    def set_timeout(self, seconds: float | None) -> None:
        if self._timeout != (self.sock, seconds):  # an ioctl: only when it changes
            self.sock.settimeout(seconds)  # type: ignore[union-attr]
            self._timeout = (self.sock, seconds)

    def send_whole(self, method: str, target: str, body: bytes | None, headers: Any) -> None:
        """http.client's ``request()``, its head and body sent in one write: http.client
        writes them apart (two system calls, two segments, for every POST). As urllib3, a
        connection closed or reset while sending is not a failure yet: the server may have
        answered (a 413, a 401) before it closed; reading the answer tells."""
        self._held = []
        try:
            self.request(method, target, body, headers)
            whole = b"".join(self._held)
        finally:
            self._held = None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send(whole)

    def send(self, data: Any) -> None:
        if self._held is not None and isinstance(data, bytes):
            self._held.append(data)
        else:
            super().send(data)

    def putheader(self, header: str | bytes, *values: Any) -> None:
        """http.client's putheader, each header line checked (name and value) and encoded
        once a connection: a cold sync sends the same ten lines 10,000 times (only
        Content-Length's value varies, among a few), and http.client checked each with two
        regular expressions: 0.97 of a calendar request's CPU without it (paired A/B)."""
        # Only a str name with one str value (what requests and http.client put): 1, True
        # and 1.0 would be one key, and http.client writes or refuses each differently.
        key = (header, values[0]) if type(header) is str and len(values) == 1 and type(values[0]) is str \
            else None
        line = self._lines.get(key) if key is not None else None
        if line is not None:
            self._output(line)  # type: ignore[attr-defined]
            return
        super().putheader(header, *values)
        if key is not None:
            if len(self._lines) >= _MAX_LINES:
                self._lines.clear()
            self._lines[key] = self._buffer[-1]  # type: ignore[attr-defined] # what it wrote

    def _tcp(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.timeouts[0])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as urllib3 does
        return sock


class _TlsConnection(_Connection):
    default_port = http.client.HTTPS_PORT  # "Host: name", not "Host: name:443"

    def __init__(self, host: str, port: int, bundle: str) -> None:
        super().__init__(host, port)
        self._bundle = bundle

    def connect(self) -> None:
        sock = self._tcp()
        # The handshake can stall: the watchdog must be able to shut this socket down
        # before the connection holds the TLS socket that replaces it.
        watchdog.watch_socket(sock)
        self.phase = "handshake"
        try:
            name = self.host.split("%", 1)[0]  # an IPv6 scope id is not part of the name
            self.sock = _context(self._bundle).wrap_socket(sock, server_hostname=name)
        except BaseException:
            sock.close()
            raise
        watchdog.attach(self)


_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _context(bundle: str) -> ssl.SSLContext:
    """urllib3's default TLS context with ``bundle`` (a file or a folder) loaded, made once
    per bundle (loading certifi's takes ~10 ms)."""
    with _contexts_lock:
        context = _contexts.get(bundle)
        if context is None:
            context = ssl_.create_urllib3_context()
            context.check_hostname = True
            context.hostname_checks_common_name = False
            if os.path.isdir(bundle):
                context.load_verify_locations(capath=bundle)
            else:
                context.load_verify_locations(cafile=bundle)
            context.set_alpn_protocols(["http/1.1"])
            _contexts[bundle] = context
        return context


def _origin_usable(origin: str, settings: dict[str, Any]) -> bool:
    scheme = urlsplit(origin).scheme
    verify = settings.get("verify", True)
    if scheme not in ("http", "https") or settings.get("cert"):
        return False
    if select_proxy(origin + "/", settings.get("proxies") or {}):
        return False
    if scheme == "http":
        return True
    if verify is not True and not (isinstance(verify, str) and os.path.exists(verify)):
        return False  # verify=False, or a missing bundle: the adapter's own handling
    # Where the ssl module cannot check host names without the common name, urllib3 checks
    # them itself: leave those (old OpenSSL, pyOpenSSL) to it.
    return getattr(ssl_, "HAS_NEVER_CHECK_COMMON_NAME", False) and not ssl_.IS_PYOPENSSL


def _adapter_error(exc: Exception, phase: str) -> Exception:
    """The requests exception the adapter raises for ``exc``, raised while ``phase``
    (connect, handshake, send, answer), with the innermost cause kept, so that ``reason()``
    reads the same; an exception that is not about the network is returned as it is.

    As urllib3 and the adapter do: a timeout is ConnectTimeout while connecting,
    ReadTimeout in the handshake or while waiting for the answer, and a ConnectionError
    ("connection aborted") while sending; a header urllib3 refuses is InvalidHeader."""
    if isinstance(exc, urllib3_exceptions.InvalidHeader):
        return requests.exceptions.InvalidHeader(exc)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, TimeoutError) and phase != "send":
        return (requests.ConnectTimeout if phase == "connect" else requests.ReadTimeout)(exc)
    if isinstance(exc, OSError | http.client.HTTPException):
        return requests.ConnectionError(exc)
    return exc
