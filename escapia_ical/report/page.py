"""What the status page shows, gathered from state only (status.json, each account's
feeds.json and policy.json): no network, no secret.

The health of a feed and the notes that need an operator are status.py's, the same
``status`` prints and exits by; nothing here judges a feed differently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from escapia_ical.config import Config
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import HoldBook
from escapia_ical.feeds.spans import Span
from escapia_ical.report.channels import ChannelFetch, channel_fetches
from escapia_ical.report.strip import NIGHT_KINDS, STRIP_NIGHTS, night_strip
from escapia_ical.state import AccountState
from escapia_ical.status import (
    ALERTING,
    RUNS_HOURS,
    account_notes,
    configured_rows,
    feed_health,
    feed_rows,
    format_age,
    load_status,
    run_note,
)

Fetches = Callable[..., dict[str, dict[str, ChannelFetch]]]


def gather_page(config: Config, now: dt.datetime, today: dt.date, max_age: dt.timedelta, *,
                base_url: str | None = None, fetches: Fetches = channel_fetches) -> dict[str, Any]:
    """Return the template's context: the runs, and per account its notes and one row per
    unit (health, ages, per-channel fetches, the night strip from ``today``). With
    ``base_url`` each row carries its feed URL (a secret name when feed_tokens is on);
    without it no feed file name is in the context at all. ``fetches`` is
    channels.channel_fetches unless a test passes its own."""
    recorded = load_status(config.state_dir)
    wanted = {a.name: a.units for a in config.accounts}
    rows = configured_rows(feed_rows(recorded, now), wanted)
    notes = account_notes(recorded, set(wanted))
    accounts = []
    for account in config.accounts:
        entry = recorded.get("accounts", {}).get(account.name, {})
        state = AccountState(config.state_dir, account.name)
        current = {e["unit"]: (name, e) for name, e in sorted(state.feed_stamps().items(), reverse=True)
                   if "retired" not in e and isinstance(e.get("unit"), str)}  # not an old name in grace
        holds = HoldBook.load(state.folder).holds
        channels = fetches(config.state_dir, account.name)
        conflicts = _conflict_nights(entry.get("conflicts"))
        units = []
        for row in (r for r in rows if r["account"] == account.name):
            unit, (file_name, stamp) = row["unit"], current.get(row["unit"], (None, None))
            stored = entry.get("units", {}).get(unit, {})
            hold = holds.get(unit)
            units.append({
                "id": unit, "health": feed_health(row, max_age), "events": row["events"],
                "age": format_age(row["age_seconds"]), "last_success": stored.get("last_success"),
                "last_change": stored.get("last_change"), "last_error": row["last_error"],
                "retired": row["retired"], "channels": sorted(channels.get(unit, {}).items()),
                "strip": night_strip(stamp, hold.lost if hold else [], today,
                                     conflicts=conflicts.get(unit, [])),
                "url": f"{base_url.rstrip('/')}/{account.name}/{file_name}"
                if base_url and file_name else None,
            })
        accounts.append({"name": account.name, "api": account.api, "units": units,
                         "notes": [n["problem"] for n in notes if n["account"] == account.name],
                         "last_success": entry.get("last_success"), "last_attempt": entry.get("last_attempt"),
                         "alerting": sum(1 for u in units if u["health"] in ALERTING)})
    runs = _runs_since(recorded.get("runs", []), now - dt.timedelta(hours=RUNS_HOURS))
    runs_note = run_note(recorded, now, max_age)
    return {
        "generated": now.replace(microsecond=0).isoformat(), "today": today,
        "max_age": format_age(max_age.total_seconds()), "run_note": runs_note, "runs": runs,
        "runs_hours": RUNS_HOURS, "accounts": accounts, "kinds": NIGHT_KINDS, "strip_nights": STRIP_NIGHTS,
        "with_urls": base_url is not None,
        "channels_known": any(u["channels"] for a in accounts for u in a["units"]),
        "failed": sum(1 for a in accounts for u in a["units"] if u["health"] == "failed"),
        "ok": not runs_note and not any(a["alerting"] or a["notes"] for a in accounts),
    }


def _conflict_nights(conflicts: Any) -> dict[str, list[Span]]:
    """The nights of each unit's open conflicts (status, imports/watch.py)."""
    nights: dict[str, list[Span]] = {}
    for conflict in conflicts.values() if isinstance(conflicts, dict) else ():
        if isinstance(conflict, dict):
            found = spans.decode(conflict.get("nights")) or []
            nights.setdefault(str(conflict.get("unit")), []).extend(found)
    return nights


def _runs_since(runs: list[dict[str, Any]], since: dt.datetime) -> list[dict[str, Any]]:
    """Return the runs finished after ``since``, each with its bar height (0-100, by
    duration relative to the longest) for the sparkline."""
    kept = [r for r in runs if dt.datetime.fromisoformat(r["finished"]) >= since]
    longest = max((r.get("duration_seconds", 0) for r in kept), default=0) or 1
    return [{**r, "height": max(8, round(100 * r.get("duration_seconds", 0) / longest)),
             "ok": r.get("exit_code") == 0} for r in kept]
