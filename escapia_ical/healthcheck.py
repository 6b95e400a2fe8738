"""Healthcheck pings (healthchecks.io style): /start when a run begins, /<exit code> at its end.

A dead-man's switch: if the pings stop or report a failure, the operator hears about it
even when cron's mail goes nowhere. A ping that fails only warns; it never fails the run.
The URL holds a secret (anyone with it can fake our pings), so it is never printed.
"""

from __future__ import annotations

import logging

import requests

from escapia_ical.sources.http import USER_AGENT

log = logging.getLogger(__name__)
TIMEOUT = 10.0


def ping(url: str | None, suffix: str) -> None:
    """Send one ping to ``url`` + ``/suffix`` (nothing if no URL is configured)."""
    if not url:
        return
    try:
        response = requests.post(f"{url}/{suffix}", timeout=TIMEOUT, headers={"User-Agent": USER_AGENT},
                                 allow_redirects=True)
        if response.status_code >= 400:
            log.warning("healthcheck ping /%s failed: HTTP %d", suffix, response.status_code)
    except requests.RequestException as exc:
        log.warning("healthcheck ping /%s failed: %s", suffix, exc.__class__.__name__)
