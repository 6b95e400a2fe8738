"""Which channel (Airbnb, Vrbo, Booking.com, ...) last fetched each feed: the status page's
"last fetch by channel" column.

NOT WIRED YET: the channel fetch log (nginx's access log parsed into a state file) is built
on another branch; it is to be wired into :func:`channel_fetches` at merge. Until then
this returns {} and the page says that no fetch log is kept, rather than inventing fetches.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict


class ChannelFetch(TypedDict):
    """One channel's fetches of one feed."""

    last: str  # ISO time with a zone of its latest fetch
    status: int  # the HTTP status nginx answered it
    count: int  # how many fetches the log holds


def channel_fetches(state_dir: Path, account: str) -> dict[str, dict[str, ChannelFetch]]:
    """Return ``{unit id: {channel name: ChannelFetch}}`` for ``account``'s feeds, read from
    state only (no network); {} when nothing is known. Not wired yet: always {}."""
    return {}
