"""Each request's total time limit, enforced whatever the server does.

``read_timeout`` bounds one socket read, not a request: a server sending a byte every few
seconds (in the status line, the headers or the body) never trips it and could hold a
request, and the run, forever. So every request runs inside :func:`time_limit`: a single
watchdog thread shuts down the socket of a request still running when its limit passes,
which makes the blocked read fail at once (connect, TLS, sending, headers, body alike).

How the watchdog knows the socket: a connection reports to the current thread's limit with
:func:`attach` on ``connect()`` and on every request, so a reused keep-alive connection is
watched too, and hands its new socket to :func:`watch_socket` before a TLS handshake. The
sessions from :func:`~escapia_ical.sources.transport.new_session` send over connections that
do: their own (sources/transport.py), or those of :class:`WatchedAdapter`, whose urllib3
pools (the public ``pool_classes_by_scheme`` / ``ConnectionCls`` hooks) make watched ones.
A socket that appears after the limit passed (the limit ran out during DNS or TCP connect,
which have their own timeouts) is shut down at the next re-check, every ``RECHECK``
seconds, until the request ends. Shutdown, not close: the owning thread still closes its
socket itself.

:func:`~escapia_ical.sources.stop.request_stop` fires every stoppable limit at once. The same
lock also serves :func:`take_big_body_turn`, which lets one request at a time buffer an answer of
unknown size: oversized answers then cost one size cap of memory, not one per thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator

from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from escapia_ical.sources import stop
from escapia_ical.sources.stop import Stopped

RECHECK = 0.1  # seconds between shutdowns of an expired request's sockets


class Scope:
    """One request (or a few, e.g. a ping and its redirects) under one time limit."""

    def __init__(self, limit: float, stoppable: bool):
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.stoppable = stoppable
        self.expired = False  # the limit passed, or the run stopped, before end()
        self.stopped = False  # expired because of request_stop()
        self.done = False
        self.connections: list[object] = []
        # Sockets seen, kept here because a connection may let go of its socket while the
        # answer is still read from it (http.client does on "Connection: close").
        self.sockets: list[object] = []
        # Duplicates of new connections' sockets, owned here: TLS moves the socket into a
        # new object (detaching the old one) before the connection knows it.
        self.duplicates: list[socket.socket] = []

    def end(self) -> bool:
        """Stop watching; return whether the limit passed (or the run stopped) first, in
        which case whatever was read may be cut short and must not be used."""
        with _lock:
            self.done = True
            _active.discard(self)
            duplicates, self.duplicates = self.duplicates, []
            expired = self.expired
        for duplicate in duplicates:
            duplicate.close()
        return expired


_lock = threading.RLock()  # re-entrant: request_stop() may run in a signal handler
_watchdog_wakeup = threading.Condition(_lock)
_turn_wakeup = threading.Condition(_lock)
_queue: list[tuple[float, int, Scope]] = []  # (when to act, tie-break, scope): a heap
_order = itertools.count()
_active: set[Scope] = set()
_local = threading.local()
_thread: threading.Thread | None = None
_turn_holder: Scope | None = None


@contextlib.contextmanager
def time_limit(limit: float, *, stoppable: bool = True) -> Iterator[Scope]:
    """Bound the requests this thread sends inside the block to ``limit`` seconds in all.

    Yield the :class:`Scope`; call its ``end()`` once the answer is read: if it returns
    True the answer is incomplete. Raise Stopped (before anything is sent) if the run is
    stopping and ``stoppable``; a healthcheck ping is not stoppable, so that a stopped run
    still reports its exit code.
    """
    global _thread
    scope = Scope(limit, stoppable)
    with _lock:
        if stoppable and stop.stop_requested():
            raise Stopped("not sent: the run is stopping")
        _active.add(scope)
        _schedule(scope, scope.deadline)
        if _thread is None:
            _thread = threading.Thread(target=_watch, name="escapia-request-watchdog", daemon=True)
            _thread.start()
    outer = getattr(_local, "scope", None)
    _local.scope = scope
    try:
        yield scope
    finally:
        _local.scope = outer
        scope.end()


def abort_all() -> None:
    """Fire every stoppable limit now (called by request_stop)."""
    with _lock:
        for scope in list(_active):
            if scope.stoppable:
                scope.stopped = True
                _fire(scope)
                _schedule(scope, time.monotonic() + RECHECK)


stop.on_stop(abort_all)


def take_big_body_turn(scope: Scope) -> bool:
    """Wait, at most until ``scope``'s limit, for the process's one turn to buffer a large
    answer of unknown size. Return True with the turn (give it back with
    :func:`release_big_body_turn`), False if the limit passed (or the run stopped) first."""
    global _turn_holder
    with _lock:
        while _turn_holder is not None and not scope.expired:
            left = scope.deadline - time.monotonic()
            if left <= 0:
                return False
            _turn_wakeup.wait(left)
        if scope.expired:
            return False
        _turn_holder = scope
        return True


def release_big_body_turn() -> None:
    """Give back the turn taken with :func:`take_big_body_turn`."""
    global _turn_holder
    with _lock:
        _turn_holder = None
        _turn_wakeup.notify_all()


def _schedule(scope: Scope, when: float) -> None:
    heapq.heappush(_queue, (when, next(_order), scope))
    if _queue[0][2] is scope:
        _watchdog_wakeup.notify()


def _watch() -> None:
    stop.leave_signals_to_main()
    with _lock:
        while True:
            now = time.monotonic()
            while _queue and (_queue[0][0] <= now or _queue[0][2].done):
                _, _, scope = heapq.heappop(_queue)
                if not scope.done:
                    _fire(scope)
                    _schedule(scope, now + RECHECK)
            _watchdog_wakeup.wait(_queue[0][0] - now if _queue else None)


def _fire(scope: Scope) -> None:
    scope.expired = True
    for sock in [*scope.duplicates, *scope.sockets, *(getattr(c, "sock", None) for c in scope.connections)]:
        _shut_down(sock)
    _turn_wakeup.notify_all()


def _shut_down(sock: object) -> None:
    # TLS inside TLS (an https proxy) wraps the socket in an object that is not one.
    while sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket: ssl's override would drop the TLS
    # state under the feet of the thread reading it. OSError: not connected yet, or closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def attach(connection: object) -> None:
    """Watch ``connection`` (and its socket, if it has one) for the current thread's limit."""
    scope = getattr(_local, "scope", None)
    if scope is None:
        return
    sock = getattr(connection, "sock", None)
    with _lock:
        if scope.done:
            return
        if connection not in scope.connections:
            scope.connections.append(connection)
        if sock is not None and sock not in scope.sockets:
            scope.sockets.append(sock)
        if scope.expired:
            _shut_down(sock)


def watch_socket(sock: socket.socket) -> None:
    """Watch a new connection's socket before TLS replaces it: the watchdog keeps a
    duplicate of it (closed when the scope ends), which it can shut down mid-handshake."""
    scope = getattr(_local, "scope", None)
    if scope is None:
        return
    duplicate = sock.dup()
    with _lock:
        if scope.done:
            duplicate.close()
        else:
            scope.duplicates.append(duplicate)
            if scope.expired:
                _shut_down(duplicate)


class _Watched:
    """Report the connection to the current thread's time limit before it is used."""

    def connect(self) -> None:
        attach(self)
        super().connect()  # type: ignore[misc]
        attach(self)  # now with its socket

    def _new_conn(self):  # type: ignore[no-untyped-def]
        # The one hook between the TCP connect and the TLS handshake (urllib3 1.x and 2.x;
        # were it ever gone, only a stalled handshake would outlive the limit, by at most
        # connect_timeout per read).
        sock = super()._new_conn()  # type: ignore[misc]
        watch_socket(sock)
        return sock

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        attach(self)  # a reused keep-alive connection does not connect again
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections obey :func:`time_limit`."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # type: ignore[no-untyped-def]
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # An http(s) proxy uses the stock pools: watch them. A SOCKS proxy has its own,
        # which must stay (the proxy would be bypassed): its requests are only checked
        # when they end (Scope.end), not cut short.
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
