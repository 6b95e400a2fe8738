"""A unit's life as a feed: published while selected, *retired* once it is not, removed by
``prune`` after a grace period.

A unit Escapia no longer lists, or that the account's ``units:`` no longer selects, is
retired by the next sync of the whole account: it is no longer fetched, its feed stays
served unchanged (channels are not surprised by a vanishing URL), ``status`` shows it as
retired instead of stale, and after ``feeds.retire_grace_days`` ``prune`` removes its feed
files and what the state remembers of it. A unit that comes back is simply resumed.

The mark lives in the unit's feeds.json entries (``withdrawn``: when it was first seen
retired), so every name the unit was published under (secret-name rotation) goes with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escapia_ical.feeds.names import is_feed_filename
from escapia_ical.feeds.publish import feed_files
from escapia_ical.state import moment


def mark_retired(stamps: dict[str, dict[str, Any]], selected: set[str], now: dt.datetime,
                 spared: set[str] = frozenset()) -> dict[str, str]:
    """Mark the feeds.json entries of units not in ``selected`` as retired (keeping the
    first time they were), unmark those of selected units, leave ``spared`` units as they
    are; return ``{unit: since}``."""
    retired: dict[str, str] = {}
    for entry in stamps.values():
        unit = entry.get("unit")
        if not isinstance(unit, str) or unit in spared:
            continue
        if unit in selected:
            entry.pop("withdrawn", None)
            continue
        since = entry.setdefault("withdrawn", now.isoformat())
        retired[unit] = min(retired.get(unit, since), since)
    return retired


def vanished_at_once(stamps: dict[str, dict[str, Any]], listed: set[str], units: int,
                     share: float) -> set[str]:
    """Return the published units missing from Escapia's list if at least ``units`` of them
    and ``share`` of the published ones vanished at once — more likely a partial listing
    than Escapia withdrawing them all — else the empty set."""
    published = {e["unit"] for e in stamps.values()
                 if isinstance(e.get("unit"), str) and "withdrawn" not in e}
    gone = published - listed
    return gone if gone and len(gone) >= units and len(gone) >= share * len(published) else set()


@dataclass
class PrunePlan:
    """What ``prune`` does to one account's folder."""

    remove: dict[str, list[str]]  # unit -> its feed file names, grace over (or --now)
    waiting: dict[str, dt.datetime]  # unit -> when its grace ends
    unknown: list[Path]  # feed-like files the state knows nothing of: never removed


def plan_prune(folder: Path, stamps: dict[str, dict[str, Any]], now: dt.datetime, grace: dt.timedelta,
               *, at_once: bool = False) -> PrunePlan:
    """Return which retired units' feeds go now (their grace is over, or ``at_once``), which
    wait and until when, and the feed files in ``folder`` the state does not know."""
    plan = PrunePlan({}, {}, [])
    for name, entry in sorted(stamps.items()):
        since, unit = moment(entry.get("withdrawn")), entry.get("unit")
        if since is None or not isinstance(unit, str):  # (what sync never writes: left alone)
            continue
        if at_once or now - since >= grace:
            plan.remove.setdefault(unit, []).append(name)
        else:
            plan.waiting[unit] = min(plan.waiting.get(unit, since + grace), since + grace)
    files = [p for p in feed_files(folder) if is_feed_filename(p.name)]
    plan.unknown = [p for p in files if p.name not in stamps]
    return plan
