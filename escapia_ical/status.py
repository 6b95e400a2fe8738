"""The run status: what happened to every account and feed, kept in state_dir/status.json.

Entries of accounts and units this run did not touch (``--account``/``--unit``) are kept
from the previous status, and a failure never erases the time of the last success, so the
file always answers "how old is each feed, and why".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escapia_ical.state import read_json, write_json

if TYPE_CHECKING:
    from escapia_ical.sync import SyncReport

STATUS_VERSION = 1


def status_path(state_dir: Path) -> Path:
    return state_dir / "status.json"


def load_status(state_dir: Path) -> dict[str, Any]:
    """Return the last status written, or an empty one."""
    data = read_json(status_path(state_dir))
    if not isinstance(data, dict) or data.get("version") != STATUS_VERSION:
        return {"version": STATUS_VERSION, "accounts": {}}
    data.setdefault("accounts", {})
    return data


def record_run(state_dir: Path, report: SyncReport, started: dt.datetime, finished: dt.datetime,
               exit_code: int) -> dict[str, Any]:
    """Merge ``report`` into status.json, write it atomically, and return it."""
    status = load_status(state_dir)
    status["run"] = {
        "started": _iso(started), "finished": _iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "exit_code": exit_code,
    }
    when = _iso(finished)
    for account, result in report.accounts.items():
        entry = status["accounts"].setdefault(account, {"units": {}})
        entry["last_attempt"] = when
        entry["last_error"] = result.error
        if result.error is None:
            entry["last_success"] = when
        entry["requests"] = _plain(result.requests)
        responses = {f"{op} {status}": n for (op, status), n in result.responses.items()}
        entry["responses"] = _plain(responses)
        # Totals over all runs, for Prometheus counters.
        totals = entry.setdefault("responses_total", {})
        for key, count in responses.items():
            totals[key] = totals.get(key, 0) + count
        rewritten = sum(1 for u in result.units if u.rewritten and not u.error)
        entry["feeds_rewritten"] = rewritten
        entry["feeds_rewritten_total"] = entry.get("feeds_rewritten_total", 0) + rewritten
        entry["unit_errors"] = sum(1 for u in result.units if u.error)
        entry["units_fetched"] = result.fetched
        for outcome in result.units:
            unit = entry["units"].setdefault(outcome.unit_id, {})
            unit["last_attempt"] = when
            unit["last_error"] = outcome.error
            if outcome.error is None:
                unit.update(last_success=when, events=outcome.events, file=str(outcome.path),
                            rewritten=outcome.rewritten)
                if outcome.rewritten:
                    unit["last_change"] = when
    write_json(status_path(state_dir), status)
    return status


def _plain(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: int(value) for key, value in sorted(counts.items())}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> dt.timedelta:
    """Given ``90s``, ``15m``, ``2h`` or ``1d``, return the duration. Raise ValueError."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _AGE_UNITS or not text[:-1].isdigit():
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return dt.timedelta(seconds=int(text[:-1]) * _AGE_UNITS[text[-1]])


def feed_rows(status: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """Return one row per feed: account, unit, age (seconds, None if never published fresh),
    events, file and last error, sorted by account and unit."""
    rows = []
    for account, entry in sorted(status.get("accounts", {}).items()):
        for unit, state in sorted(entry.get("units", {}).items()):
            success = state.get("last_success")
            age = (now - dt.datetime.fromisoformat(success)).total_seconds() if success else None
            rows.append({"account": account, "unit": unit, "age_seconds": age,
                         "events": state.get("events"), "file": state.get("file"),
                         "last_error": state.get("last_error") or entry.get("last_error")})
    return rows


def format_age(seconds: float | None) -> str:
    """Return an age as ``42s``, ``7m``, ``3h`` or ``2d`` (``never`` for None)."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
