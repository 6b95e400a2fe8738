"""Old feed names after a change of name: kept up to date for a grace period, then removed.

A feed's name changes when its account's feed-token secret is rotated (or tokens are
switched on or off), or when ``escapia-ical rotate`` gives one unit a new name (its name
*generation*, kept in ``names.json`` with the names revoked at once, which are never
written again). Channels keep polling the old URL until someone pastes the new one,
so the old file goes on receiving every update for ``grace_days``, and is then deleted.
The state entry of each published name records its unit, so old names are recognised.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from escapia_ical.feeds.names import is_feed_filename
from escapia_ical.feeds.publish import publish_feed, remove_feed
from escapia_ical.state import kind_of, moment, names_of, read_state, warn_shape, write_state

log = logging.getLogger(__name__)

DEFAULT_GRACE_DAYS = 7


def old_names(stamps: dict[str, dict[str, Any]], unit_id: str, current: str) -> list[str]:
    """Return the names this unit's feed was published under before ``current``."""
    return sorted(names_of(stamps, unit_id) - {current})


def update_old_names(folder: Path, unit_id: str, current: str, content: bytes, stamp: dict[str, Any],
                     stamps: dict[str, dict[str, Any]], now: dt.datetime, grace_days: int) -> None:
    """Write ``content`` under each old name of the unit still in its grace period; delete
    the files and state of old names whose grace period is over. Raise PublishError if an
    old name cannot be written or deleted.

    Names come from the state file: one that is not a plain feed file name (``../x.ics``,
    ``/etc/passwd``) is dropped from ``stamps`` with a warning, and nothing is written or
    deleted under it (state.py already drops them on loading; this is the last line).
    """
    for name in old_names(stamps, unit_id, current):
        if not is_feed_filename(name):
            log.warning("%s: ignoring the old feed name %r from state: not a feed file name",
                        folder.name, name)
            del stamps[name]
            continue
        retired = _retired_at(stamps[name], now)
        if now - retired >= dt.timedelta(days=grace_days):
            remove_feed(folder / name)
            del stamps[name]
            log.info("%s: removed the old feed name %s (grace period over)", folder.name, name)
            continue
        publish_feed(folder / name, content)
        stamps[name] = {**stamp, "retired": retired.isoformat()}


def _retired_at(entry: dict[str, Any], now: dt.datetime) -> dt.datetime:
    return moment(entry.get("retired")) or now  # none (or unreadable): retired by this run


class UnitNames:
    """The name generation of each unit of one account and the names revoked, kept in
    ``state_dir/accounts/<account>/names.json`` (what is not the expected shape is reported
    and ignored). Each published feeds.json entry records its generation too: a unit's
    generation is the highest either knows, so that losing names.json alone never brings a
    revoked (lower) generation's name back."""

    def __init__(self, folder: Path, stamps: dict[str, dict[str, Any]] | None = None):
        self.path = folder / "names.json"
        data = read_state(self.path)
        data = data if isinstance(data, dict) else {}
        generations, revoked = data.get("generations", {}), data.get("revoked", [])
        problems = []
        if not isinstance(generations, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in generations.values()):
            problems.append(f"generations is {kind_of(generations)} of something else than counts")
            generations = {}
        if not isinstance(revoked, list) or not all(is_feed_filename(n) for n in revoked):
            problems.append("revoked is not a list of feed file names")
            revoked = [n for n in revoked if is_feed_filename(n)] if isinstance(revoked, list) else []
        if problems:
            warn_shape(self.path, problems)
        self.generations: dict[str, int] = dict(generations)
        for entry in (stamps or {}).values():
            unit, generation = entry.get("unit"), entry.get("generation")
            if isinstance(unit, str) and isinstance(generation, int) and not isinstance(generation, bool):
                self.generations[unit] = max(self.generations.get(unit, 0), generation)
        self.revoked: set[str] = set(revoked)

    def generation(self, unit_id: str) -> int:
        return self.generations.get(unit_id, 0)

    def rotate(self, unit_id: str) -> int:
        """Give the unit its next name generation; return it."""
        self.generations[unit_id] = self.generation(unit_id) + 1
        return self.generations[unit_id]

    def save(self, state_dir: Path) -> None:
        write_state(self.path, {"generations": self.generations, "revoked": sorted(self.revoked)})
