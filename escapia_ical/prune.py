"""Orphan feeds: files of units Escapia no longer distributes.

A sync never empties or deletes such a feed (its unit may come back, and an empty feed
would unblock a calendar); ``escapia-ical prune`` lists them and, without --dry-run,
removes them and what the state remembers of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from escapia_ical.config import Account
from escapia_ical.errors import PublishError
from escapia_ical.feeds.names import account_feed_filename, is_feed_filename
from escapia_ical.model import Unit


def find_orphans(folder: Path, account: Account, listed: list[Unit],
                 stamps: dict[str, dict[str, Any]]) -> list[Path]:
    """Return the feed files in ``folder`` that belong to no unit Escapia lists (old names
    still in their grace period belong to their unit). Only plain feed file names count:
    a dotfile or anything else is not ours to remove. Raise PublishError if ``folder`` is
    a symbolic link (its orphans would be another folder's files)."""
    if folder.is_symlink():
        raise PublishError(f"{folder} is a symbolic link; refusing to remove files through it")
    listed_ids = {u.id for u in listed}
    keep = {account_feed_filename(account, unit_id) for unit_id in listed_ids}
    keep |= {name for name, entry in stamps.items()
             if isinstance(entry, dict) and entry.get("unit") in listed_ids}
    try:
        return sorted(p for p in folder.glob("*.ics")
                      if is_feed_filename(p.name) and p.name not in keep and p.is_file())
    except OSError:
        return []
