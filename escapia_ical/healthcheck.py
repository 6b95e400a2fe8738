"""Healthcheck pings (healthchecks.io style): /start when a run begins, /<exit code> at its end.

A dead-man's switch: if the pings stop or report a failure, the operator hears about it
even when cron's mail goes nowhere. A ping that fails only warns; it never fails the run,
and it never holds the process: it ends within TIMEOUT seconds in all (and before a given
deadline), whatever the server does. The URL holds a secret (anyone with it can fake our
pings), so it is never printed, not even by urllib3's debug log at ``-vv``.
"""

from __future__ import annotations

import logging
import threading
import time

import requests

from escapia_ical.sources.http import USER_AGENT
from escapia_ical.sources.transport import new_session
from escapia_ical.sources.watchdog import time_limit

log = logging.getLogger(__name__)
TIMEOUT = 10.0  # seconds for the whole ping, redirects included
MAX_BODY = 10_000  # bytes of a failure ping's body (healthchecks.io keeps 100 kB)
_LIBRARIES = ("urllib3", "requests")  # their loggers print hosts and request paths
_pinging = threading.local()


class _HideWhilePinging(logging.Filter):
    """Drops the library records a pinging thread makes (they would name the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_pinging, "active", False)


_HIDE = _HideWhilePinging()


def ping(url: str | None, suffix: str, deadline: float | None = None, body: str | None = None) -> None:
    """Send one ping to ``url`` + ``/suffix`` (nothing if no URL is configured), taking at
    most TIMEOUT seconds, and ending by ``deadline`` (time.monotonic()) if one is given;
    ``body`` (what failed: shown by healthchecks.io with the ping) is sent as plain text,
    cut at MAX_BODY bytes. Never raise for a failed ping: warn, without the URL. Not cut
    short by request_stop(), so that a stopped run still reports its exit code."""
    if not url:
        return
    limit = TIMEOUT if deadline is None else min(TIMEOUT, deadline - time.monotonic())
    if limit <= 0:
        log.warning("healthcheck ping /%s skipped: no time left before the run deadline", suffix)
        return
    _hide_library_logs()
    _pinging.active = True
    try:
        with new_session() as session, time_limit(limit, stoppable=False) as scope:
            try:
                # stream: the status is the answer; the body is never read.
                data = body.encode("utf-8")[:MAX_BODY] if body else None
                headers = {"User-Agent": USER_AGENT}
                if data:
                    headers["Content-Type"] = "text/plain; charset=utf-8"
                with session.post(f"{url}/{suffix}", timeout=(limit, limit), allow_redirects=True,
                                  headers=headers, data=data, stream=True) as response:
                    status = response.status_code
                failure = f"HTTP {status}" if status >= 400 else None
            except requests.RequestException as exc:
                failure = exc.__class__.__name__
            if scope.end():
                failure = f"no answer within {round(limit, 1):g} s"
    finally:
        _pinging.active = False
    if failure:
        log.warning("healthcheck ping /%s failed: %s", suffix, failure)


def _hide_library_logs() -> None:
    """Put the filter on every urllib3/requests logger: a logger's filters apply only to
    records made on it, not to those of its children."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".")[0] in _LIBRARIES \
                and _HIDE not in logger.filters:
            logger.addFilter(_HIDE)
