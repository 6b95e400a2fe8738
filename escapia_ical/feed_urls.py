"""``escapia-ical feeds``: every feed's URL to paste into a channel — each unit's default
feed and its profile feeds — from state, or (``--live``) from Escapia's unit list."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import click

from escapia_ical.commands import load, selected_accounts
from escapia_ical.config.positions import one_line
from escapia_ical.errors import EXIT_FAILED
from escapia_ical.feeds.names import account_feed_filename
from escapia_ical.feeds.rotation import UnitNames
from escapia_ical.sources import make_source
from escapia_ical.state import AccountState
from escapia_ical.sync.incremental import ChangeTracker
from escapia_ical.sync.profiles import profile_files

log = logging.getLogger(__name__)


def feeds(config_path: Path, accounts: Sequence[str], base_url: str | None, live: bool = False,
          as_json: bool = False) -> int:
    """Print each unit's feed URL (or path) — its default feed and each profile's — for
    pasting into Airbnb, Vrbo and others: from state (the names the last syncs published; no
    network, no secret), or with ``live`` from Escapia's unit list. URLs are under
    ``base_url``, else ``feeds.base_url``; without either, paths. Return 1 if an account has
    no feed to show."""
    config = load(config_path, secrets=live)
    base_url = base_url or config.feeds.base_url
    selected = selected_accounts(config, accounts)
    missing, found = 0, []
    for account in selected:
        rows = _live_feeds(config, account) if live else _published_feeds(config, account)
        if not rows:
            missing += 1
            log.warning("%s: no feed published yet (run `escapia-ical sync`, or `feeds --live` to ask "
                        "Escapia)", account.name)
        for unit_id, name, file_name, profile in rows:
            where = (f"{base_url.rstrip('/')}/{account.name}/{file_name}" if base_url
                     else str(config.output_dir / account.name / file_name))
            found.append({"account": account.name, "unit": unit_id, "name": name, "url": where,
                          "profile": profile})
    if as_json:
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
    for row in found if not as_json else ():
        # Ids and names come from Escapia: each cell escaped, so none can forge a row.
        cells = [*list(row.values())[:4], row["profile"] or "default"]
        click.echo("\t".join(one_line(cell) for cell in cells))
    return EXIT_FAILED if missing else 0


def _published_feeds(config, account) -> list[tuple[str, str, str, str | None]]:
    """(unit, name, file below the account folder, profile) of the feeds the account's last
    syncs published under their current names (an old name in its grace period is not one
    to paste), profiles no longer configured left out."""
    state = AccountState(config.state_dir, account.name)
    names = {u.id: u.name for u in ChangeTracker(account, state).data["units"]} \
        if account.api == "hsapi" else {}
    configured = {p.name for p in account.profiles}
    rows = []
    for file_name, entry in state.feed_stamps().items():
        unit = entry.get("unit")
        if "retired" in entry or not isinstance(unit, str):
            continue
        if account.units != "all" and unit not in account.units:
            continue
        rows.append((unit, names.get(unit, ""), file_name, None))
        rows += [(unit, names.get(unit, ""), _in(path.parent.name, path.name), path.parent.name)
                 for path in profile_files(config, account, entry, withdrawn=False)
                 if path.parent.name in configured]
    return sorted(rows, key=lambda r: (r[0], r[3] or ""))


def _live_feeds(config, account) -> list[tuple[str, str, str, str | None]]:
    names = UnitNames(AccountState(config.state_dir, account.name).folder)
    rows = []
    for unit in make_source(account, config.state_dir).list_units():
        if account.units == "all" or unit.id in account.units:
            generation = names.generation(unit.id)
            rows.append((unit.id, unit.name, account_feed_filename(account, unit.id, generation), None))
            rows += [(unit.id, unit.name, _in(p.name, account_feed_filename(account, unit.id, generation,
                                                                             p.name)), p.name)
                     for p in account.profiles]
    return rows


def _in(profile: str, file_name: str) -> str:
    return f"{profile}/{file_name}"
