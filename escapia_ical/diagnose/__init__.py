"""``escapia-ical diagnose``: what a real Escapia account's answers look like, for a person
connecting it for the first time.

Read-only: it writes no feed, no sync state and no status. The one file it may write is
the HSAPI token cache (``state_dir/accounts/<account>/token.json``, 0600), exactly as a sync
does: reusing the token spares Escapia a token request at the next run. Bounded: at most
``REQUEST_LIMIT`` requests in all (retries and token requests included, refused beyond
that), each under the account's timeouts, the whole under ``deadline_seconds``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TextIO

from escapia_ical.config import Account, Config
from escapia_ical.diagnose.budget import REQUEST_LIMIT, RequestBudget
from escapia_ical.diagnose.report import Report
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import FeedWindow
from escapia_ical.sources import make_source
from escapia_ical.sources.http import TransportError

__all__ = ["REQUEST_LIMIT", "Report", "diagnose"]


def diagnose(config: Config, account: Account, *, progress: TextIO | None = None,
             today: dt.date | None = None, limit: int = REQUEST_LIMIT) -> Report:
    """Probe ``account`` in at most ``limit`` requests and return what was found.
    ``progress``: where to draw a progress line (a terminal), or None.

    Raise AuthError if the credentials are refused, SourceError if Escapia cannot be
    reached or cannot even list the units (one line each, naming the account).
    """
    today = today or dt.date.today()
    window = FeedWindow.around(today, config.feeds.past_days, config.feeds.future_days)
    budget = RequestBudget(limit, progress=progress, label=f"diagnose {account.name}: ")
    source = make_source(account, config.state_dir, deadline=time.monotonic() + config.deadline_seconds)
    source.http.observer = budget
    try:
        if account.api == "escapianet":
            from escapia_ical.diagnose.escapianet_probes import probe_escapianet

            configured = {"calendar_mode": account.calendar_mode, "blocked_codes": account.blocked_codes}
            findings = probe_escapianet(source, window, today)
        else:
            from escapia_ical.diagnose.hsapi_probes import probe_hsapi

            configured = {"end_date": account.end_date, "mode": account.mode}
            findings = probe_hsapi(source, window)
    except AuthError as exc:
        raise AuthError(f"{account.name}: {exc}") from None
    except TransportError as exc:
        raise SourceError(f"{account.name}: cannot reach Escapia ({exc}); check base_url and the "
                          "network") from None
    except SourceError as exc:
        raise SourceError(f"{account.name}: {exc}") from None
    finally:
        budget.finish_progress()
    return Report(account.name, account.api, configured, (window.start.isoformat(), window.end.isoformat()),
                  findings, budget.summary(), dict(sorted(budget.rate_headers.items())), budget.timings())
