"""What a unit's calendar is asked for: the feed window and a margin of nights beyond its end.

A feed shows the window ``[today - past_days, today + future_days)``; at midnight the window
gains a night at its far end. A night never asked about is published blocked (a placeholder:
never show a night free that nobody said was free), so if fetches asked only for the window,
the daily roll would change every feed, every day. Every fetch (both APIs, full and
incremental, the reconcile) therefore asks for ``margin_days`` more: a unit is fetched again
at least every ``reconcile_hours``, so a margin of ``ceil(reconcile_hours / 24) + 1`` days
keeps what was asked (the entry's ``through``, sync/stamps.py) ahead of the window's end,
and the roll shows the margin's nights from the stored answer. The margin never appears in
a feed, never counts as a loss or as uncovered (the publish policy judges the window
alone), and is cut so that no request asks for more than ``MAX_ASKED_NIGHTS`` (the ~two
years other clients cap a calendar request at); a window that long gets no margin, and its
roll blocks the night it gains as before. What an answer really covers decides ``through``
(feeds/spans.py ``covered_from``): a margin Escapia did not answer is not taken as asked.
"""

from __future__ import annotations

import datetime as dt
import math

from escapia_ical.config import Account
from escapia_ical.model import FeedWindow

MAX_ASKED_NIGHTS = 764  # other clients' cap on one calendar request (../shared/escapia/API-NOTES.md)


def margin_days(window: FeedWindow, reconcile_hours: float) -> int:
    """Return how many nights past ``window``'s end a fetch asks for: enough to outlast the
    longest time between two fetches of a unit (``reconcile_hours``) plus a day, but never
    more than keeps the request within ``MAX_ASKED_NIGHTS``."""
    wanted = math.ceil(reconcile_hours / 24) + 1
    room = MAX_ASKED_NIGHTS - (window.end - window.start).days
    return max(0, min(wanted, room))


def asked_window(window: FeedWindow, account: Account) -> FeedWindow:
    """Return the nights the account's fetches ask for: the feed window and its margin."""
    days = margin_days(window, getattr(account, "reconcile_hours", 6.0))
    return FeedWindow(window.start, window.end + dt.timedelta(days=days))
