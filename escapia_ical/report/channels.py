"""Which channel (Airbnb, Vrbo, Booking.com, ...) last fetched each feed: the status page's
"last fetch by channel" column, read from the channel fetch log (``state_dir/channels.json``,
see :mod:`escapia_ical.channels`); {} when no access log is configured or read yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from escapia_ical.channels.record import ChannelBook


class ChannelFetch(TypedDict):
    """One channel's fetches of one feed."""

    last: str  # ISO time with a zone of its latest fetch
    status: int  # the HTTP status nginx answered it
    count: int  # how many fetches the log holds


def channel_fetches(state_dir: Path, account: str) -> dict[str, dict[str, ChannelFetch]]:
    """Return ``{unit id: {channel name: ChannelFetch}}`` for ``account``'s feeds, read from
    state only (no network); {} when nothing is known."""
    units = ChannelBook.load(state_dir).feeds.get(account, {})
    return {unit: {channel: ChannelFetch(last=entry["last"], status=entry["status"], count=entry["count"])
                   for channel, entry in channels.items()}
            for unit, channels in units.items()}
