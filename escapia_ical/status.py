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
               exit_code: int) -> None:
    """Merge ``report`` (a SyncReport) into status.json and write it atomically."""
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
        entry["responses"] = _plain({f"{op} {status}": n for (op, status), n in result.responses.items()})
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


def _plain(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: int(value) for key, value in sorted(counts.items())}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()
