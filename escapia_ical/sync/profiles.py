"""Publishing a unit's named feed profiles (config/profiles.py, feeds/profiles.py) beside its
default feed, from the same blocks: no profile ever costs a request.

Each profile feed lives at ``output/<account>/<profile>/<file>``, its file named like the
default feed (with its own token under secret names). What was published is kept in the
unit's feeds.json entry under ``profiles`` (profile -> file, digest, DTSTAMP, events and a
fingerprint of the profile's settings), with the nights' kinds under ``kinds``
(feeds/kinds.py ``encode``), so that a tick can tell without rendering whether a profile
feed is current: same day, same settings, same kinds, file present.

A profile removed from the configuration (or renamed) keeps its files, marked
``withdrawn``, until ``prune`` removes them after ``feeds.retire_grace_days``: a channel
still polling its URL is not surprised by a 404, and is never shown a booking as free —
until then they receive the default feed's content (every blocked night) whenever it
changes, since the profile's own settings are gone (``rotate --revoke-now`` deletes them).

A feed whose name changed (``rotate``, a new token secret) is written under the new name,
and its old name kept up to date for the account's ``feed_token_grace_days`` before it is
deleted (``rotate --revoke-now`` deletes it at once).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from escapia_ical.config import Account, Config
from escapia_ical.config.profiles import NAME_PATTERN, Profile
from escapia_ical.feeds import kinds
from escapia_ical.feeds.kinds import Claims, Labels
from escapia_ical.feeds.names import account_feed_filename, is_feed_filename
from escapia_ical.feeds.profiles import profile_blocks, profile_window
from escapia_ical.feeds.publish import current_bytes, feed_present, publish_feed, remove_feed, subfolders
from escapia_ical.feeds.ranges import FeedBlock
from escapia_ical.feeds.render import events_digest, profile_events, render_events
from escapia_ical.feeds.spans import Span
from escapia_ical.model import BlockedRange, Unit
from escapia_ical.state import moment


def unit_labels(blocks: Sequence[FeedBlock], claims: Claims | None) -> Labels:
    """Return the kinds of the nights of the unit's (whole) blocks, given its claims."""
    return kinds.label(((b.origin.start, b.origin.end) for b in blocks), claims or {})


def profile_path(config: Config, account: Account, unit_id: str, generation: int, profile: str) -> Path:
    """Return where the unit's feed of ``profile`` is published."""
    name = account_feed_filename(account, unit_id, generation, profile)
    return config.output_dir / account.name / profile / name


def fingerprint(profile: Profile, config: Config) -> str:
    """Return a digest of what makes a profile's feeds: its settings and the feeds' defaults."""
    settings = {k: v for k, v in asdict(profile).items() if k != "line"}
    material = [settings, config.feeds.summary, config.feeds.uid_domain, config.feeds.past_days,
                config.feeds.future_days]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def profiles_current(config: Config, account: Account, unit_id: str, entry: dict[str, Any],
                     generation: int, labels: Labels | None) -> bool:
    """Return whether every profile feed of the unit is as its entry says and still right:
    the same profiles and settings, the same kinds (``labels``, when the account reads
    them), each file present."""
    published = entry.get("profiles") if isinstance(entry.get("profiles"), dict) else {}
    live = {n for n, p in published.items() if isinstance(p, dict) and "withdrawn" not in p}
    if live != {p.name for p in account.profiles}:
        return False
    # Kinds are kept (and compared) where they can change: an HSAPI account whose profiles
    # need them. Elsewhere every night is "other", always.
    kept = getattr(account, "kinds_wanted", False)
    if labels is not None and kept and entry.get("kinds") != kinds.encode(labels):
        return False
    for profile in account.profiles:
        path = profile_path(config, account, unit_id, generation, profile.name)
        mine = published[profile.name]
        if mine.get("file") != path.name or mine.get("config") != fingerprint(profile, config):
            return False
        if not feed_present(path):
            return False
    return True


def profile_feed(config: Config, account: Account, unit: Unit, origins: Sequence[BlockedRange],
                 labels: Labels, unknown: Sequence[Span], profile: Profile,
                 today: dt.date) -> tuple[list[tuple[str, dt.date, dt.date | None, str]], str]:
    """Return the events of the unit's feed of ``profile`` for ``today``'s window, from the
    whole ranges of the default feed's blocks (``origins``), and their digest."""
    window = profile_window(profile, today, config.feeds.past_days, config.feeds.future_days)
    events = profile_events(account.name, unit, profile_blocks(origins, labels, unknown, profile, window),
                            profile, config.feeds)
    return events, events_digest(unit, events)


def profiles_unchanged(config: Config, account: Account, unit: Unit, blocks: Sequence[FeedBlock],
                       unknown: Sequence[Span], labels: Labels, entry: dict[str, Any],
                       today: dt.date) -> bool:
    """Return whether every profile feed the entry records (current: see profiles_current)
    would show for ``today`` exactly what it shows: the same digest, so the same bytes."""
    published = entry.get("profiles") or {}
    origins = [b.origin for b in blocks]
    return all(profile_feed(config, account, unit, origins, labels, unknown, profile, today)[1]
               == published[profile.name].get("digest") for profile in account.profiles)


def publish_profiles(config: Config, account: Account, unit: Unit, blocks: Sequence[FeedBlock],
                     unknown: Sequence[Span], labels: Labels, entry: dict[str, Any], previous: Any,
                     *, today: dt.date, now: dt.datetime, generation: int, force: bool = False,
                     dry_run: bool = False, grace_days: int = 7, default: bytes | None = None,
                     unsynced: set[Path] | None = None) -> int:
    """Render and publish the unit's profile feeds; record them in ``entry`` (its new
    feeds.json entry; ``previous`` is what the last one recorded). The files of profiles no
    longer configured get ``default`` (the default feed's bytes). Return how many files
    were (or, for a dry run, would be) rewritten. With ``unsynced``, folders are fsynced by
    the caller (feeds/publish.py ``sync_folders``). Raise PublishError if one cannot be
    written; the profiles published before it are recorded."""
    previous = previous if isinstance(previous, dict) else {}
    recorded: dict[str, Any] = {name: {**p, "withdrawn": p.get("withdrawn", now.isoformat())}
                                for name, p in previous.items()
                                if isinstance(p, dict) and name not in {q.name for q in account.profiles}}
    entry["profiles"] = recorded
    if default is not None and not dry_run:  # a profile taken out of the config: see the module docstring
        for path in profile_files(config, account, {"profiles": recorded}, old=True):
            publish_feed(path, default, root=config.output_dir)
    if getattr(account, "kinds_wanted", False):
        entry["kinds"] = kinds.encode(labels)
    rewritten = 0
    origins = [b.origin for b in blocks]
    for profile in account.profiles:
        events, digest = profile_feed(config, account, unit, origins, labels, unknown, profile, today)
        before = previous.get(profile.name) if isinstance(previous.get(profile.name), dict) else {}
        dtstamp = now.replace(microsecond=0)
        if before.get("digest") == digest:
            dtstamp = moment(before.get("dtstamp")) or dtstamp
        content = render_events(unit, events, dtstamp)
        path = profile_path(config, account, unit.id, generation, profile.name)
        if dry_run:
            rewritten += force or current_bytes(path) != content
            continue
        rewritten += publish_feed(path, content, force=force, root=config.output_dir, unsynced=unsynced)
        recorded[profile.name] = {"file": path.name, "digest": digest, "dtstamp": dtstamp.isoformat(),
                                  "events": len(events), "config": fingerprint(profile, config)}
        old = _old_names(before, path.name, content, path.parent, config.output_dir, now, grace_days)
        if old:
            recorded[profile.name]["old"] = old
    return rewritten


def _old_names(before: dict[str, Any], current: str, content: bytes, folder: Path, root: Path,
               now: dt.datetime, grace_days: int) -> dict[str, str]:
    """Keep the profile feed's old names (after ``rotate`` or a new token secret) up to
    date for ``grace_days``, as the default feed's (feeds/rotation.py), then delete them;
    return the old names still in their grace period (name -> since when)."""
    old = before.get("old") if isinstance(before.get("old"), dict) else {}
    old = {n: t for n, t in old.items() if n != current}
    if is_feed_filename(before.get("file")) and before["file"] != current:
        old.setdefault(before["file"], now.isoformat())
    kept = {}
    for name, since in sorted(old.items()):
        if not is_feed_filename(name):  # from state: never a path outside the folder
            continue
        retired = moment(since) or now
        if now - retired >= dt.timedelta(days=grace_days):
            remove_feed(folder / name, root=root)
        else:
            publish_feed(folder / name, content, root=root)
            kept[name] = retired.isoformat()
    return kept


def profile_folders(config: Config, account: Account) -> list[Path]:
    """Return the account's profile folders: those configured, and any other folder of a
    profile's name (one no longer configured) found in the account folder."""
    folder = config.output_dir / account.name
    names = {p.name for p in account.profiles}
    names |= {d.name for d in subfolders(folder) if re.fullmatch(NAME_PATTERN, d.name)}
    return [folder / name for name in sorted(names)]


def profile_files(config: Config, account: Account, entry: Any, *, withdrawn: bool = True,
                  old: bool = False) -> list[Path]:
    """Return the profile feed files a feeds.json entry records (names checked: a name from
    state never leaves its profile folder): current names, with ``old`` also the old names
    in their grace period; without ``withdrawn`` not those of profiles no longer configured."""
    published = entry.get("profiles") if isinstance(entry, dict) else None
    if not isinstance(published, dict):
        return []
    files = []
    for name, recorded in sorted(published.items()):
        if not isinstance(recorded, dict) or not re.fullmatch(NAME_PATTERN, name):
            continue
        if "withdrawn" in recorded and not withdrawn:
            continue
        olds = recorded.get("old") if old and isinstance(recorded.get("old"), dict) else {}
        files += [config.output_dir / account.name / name / file for file in [recorded.get("file"), *olds]
                  if is_feed_filename(file)]
    return files
