"""The run status: what happened to every account and feed, kept in state_dir/status.db
(the document the path ``state_dir/status.json`` names; see escapia_ical/store/documents.py).

Entries of accounts and units this run did not touch (``--account``/``--unit``) are kept
from the previous status, and a failure never erases the time of the last success, so the
file always answers "how old is each feed, and why".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from escapia_ical.feeds import spans
from escapia_ical.logs import mask_feed_tokens
from escapia_ical.state import kind_of, read_state, shape_of, warn_shape, write_state
from escapia_ical.sync.leases import HOST

if TYPE_CHECKING:
    from escapia_ical.sync import SyncReport

STATUS_VERSION = 1


def status_path(state_dir: Path) -> Path:
    return state_dir / "status.json"


def load_status(state_dir: Path) -> dict[str, Any]:
    """Return the last status written, or an empty one.

    What is not the expected shape (see ``_ACCOUNT_FIELDS`` and ``_UNIT_FIELDS``) is left
    out, with one warning naming the file; what is, is kept. Unknown keys are kept.
    """
    path = status_path(state_dir)
    data = _expanded(read_state(path))
    empty = {"version": STATUS_VERSION, "accounts": {}}
    if data is None:
        return empty
    if not isinstance(data, dict):
        warn_shape(path, [f"expected a mapping, not {kind_of(data)}"])
        return empty
    if data.get("version") != STATUS_VERSION:
        found = repr(data["version"]) if "version" in data else "missing"
        warn_shape(path, [f"version is {found}, not {STATUS_VERSION}"])
        return empty
    problems: list[str] = []
    status = _checked(data, {"run": _MAPPING, "accounts": _MAPPING, "runs": _LIST}, "", problems)
    if "run" in status:
        status["run"] = _checked(status["run"], _RUN_FIELDS, "run.", problems)
    if "runs" in status:  # a run without its time cannot be placed in the history: dropped
        runs = [_checked(r, _RUN_FIELDS, "runs[].", problems) if isinstance(r, dict) else {}
                for r in status["runs"]]
        status["runs"] = [r for r in runs if "finished" in r]
        if len(status["runs"]) < len(runs):
            problems.append(f"{len(runs) - len(status['runs'])} of runs[] without a valid finished time")
    accounts, status["accounts"] = status.get("accounts", {}), {}
    for name, entry in accounts.items():
        where = f"accounts.{name[:40]}"
        if not isinstance(entry, dict):
            problems.append(f"{where} is {kind_of(entry)}, not a mapping")
            continue
        account = _checked(entry, _ACCOUNT_FIELDS, f"{where}.", problems)
        units, account["units"] = account.get("units", {}), {}
        for unit_id, unit in units.items():
            if isinstance(unit, dict):
                account["units"][unit_id] = unit if _known_right(unit) else _checked(
                    unit, _UNIT_FIELDS, f"{where}.units.{unit_id[:40]}.", problems, remember=True)
            else:
                problems.append(f"{where}.units.{unit_id[:40]} is {kind_of(unit)}, not a mapping")
        status["accounts"][name] = account
    if problems:
        warn_shape(path, problems)
    return status


# What most units' entries share with their account's is not stored as such, so that a
# tick where every unit succeeds rewrites its account's entry, not one row per unit: a
# last_attempt or last_success equal to the account's is stored as SAME; ``rewritten`` (did
# the last attempt rewrite the feed) of a published unit only when true.
SAME = "=account"


def save_status(state_dir: Path, status: dict[str, Any]) -> None:
    """Store ``status`` (the caller holds the status lock); only the units whose entry
    changed are written (see SAME)."""
    accounts = {}
    for name, entry in status.get("accounts", {}).items():
        units = entry.get("units") if isinstance(entry, dict) else None
        if not isinstance(units, dict):
            accounts[name] = entry
            continue
        compact = {}
        attempt, success = entry.get("last_attempt"), entry.get("last_success")  # (see SAME)
        for unit_id, unit in units.items():  # (10,000 a tick: written for speed)
            if isinstance(unit, dict):
                unit = unit.copy()
                if "last_attempt" in unit and unit["last_attempt"] == attempt:
                    unit["last_attempt"] = SAME
                if "last_success" in unit and unit["last_success"] == success:
                    unit["last_success"] = SAME
                if "file" in unit and unit.get("rewritten") is False:
                    del unit["rewritten"]
            compact[unit_id] = unit
        accounts[name] = {**entry, "units": compact}
    stored = {**status, "accounts": accounts}
    if isinstance(status.get("runs"), list):  # a row per run: a tick adds one, not the day's 288 again
        stored["runs"] = {}
        for run in status["runs"]:
            key = str(run.get("finished")) if isinstance(run, dict) else "?"
            while key in stored["runs"]:
                key += "+"
            stored["runs"][key] = run
    write_state(status_path(state_dir), stored)


def _expanded(data: Any) -> Any:
    """Return the stored status with every SAME replaced by its value, a published unit's
    ``rewritten`` false where absent, and its runs as the list they are."""
    if isinstance(data, dict) and isinstance(data.get("runs"), dict):
        data["runs"] = [run for _, run in sorted(data["runs"].items())]
    accounts = data.get("accounts") if isinstance(data, dict) else None
    for entry in accounts.values() if isinstance(accounts, dict) else ():
        units = entry.get("units") if isinstance(entry, dict) else None
        if not isinstance(units, dict):
            continue
        attempt, success = entry.get("last_attempt"), entry.get("last_success")
        for unit in units.values():
            if not isinstance(unit, dict):
                continue
            for key, value in (("last_attempt", attempt), ("last_success", success)):
                if key in unit and unit[key] == SAME:
                    if value is None:
                        del unit[key]
                    else:
                        unit[key] = value
            if "file" in unit and "rewritten" not in unit:
                unit["rewritten"] = False
    return data


def _checked(entry: dict[str, Any], fields: dict[str, _Check], where: str,
             problems: list[str], remember: bool = False) -> dict[str, Any]:
    """Return a copy of ``entry`` without the known fields whose value ``fields`` refuses;
    add one problem for each to ``problems``. ``remember``: a unit's entry found right
    makes its shape known (see :func:`_known_right`)."""
    kept = {}
    for key, value in entry.items():
        if key in fields and not fields[key].accepts(value):
            problems.append(f"{where}{key} is {kind_of(value)}, not {fields[key].expected}")
        else:
            kept[key] = value
    if remember and len(kept) == len(entry) and len(_UNIT_SHAPES) < 1_000:
        _UNIT_SHAPES[shape_of(entry)] = tuple(k for k, v in entry.items() if _UNIT_FIELDS.get(k) is _TIME)
    return kept


def _known_right(unit: dict[str, Any]) -> bool:
    """Whether a unit's entry has the shape (keys, exact types of the values) of one that
    :func:`_checked` found right, and times that were valid: 10,000 units a run share a few
    shapes and times, and this is 4x faster than checking each field."""
    times = _UNIT_SHAPES.get(shape_of(unit))
    return times is not None and _TIMES_SEEN.issuperset(map(unit.__getitem__, times))


_UNIT_SHAPES: dict[tuple, tuple[str, ...]] = {}  # shapes found right -> their keys holding a time


class _Check(NamedTuple):
    accepts: Callable[[Any], bool]
    expected: str


def _is_time(value: Any) -> bool:  # what _iso() writes: ages are computed from it
    if not isinstance(value, str):
        return False
    if value in _TIMES_SEEN:  # (units share their account's times: 10,000 checks, a few times)
        return True
    try:
        valid = dt.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
    if valid and len(_TIMES_SEEN) < 100_000:
        _TIMES_SEEN.add(value)
    return valid


_TIMES_SEEN: set[str] = set()  # the valid times checked so far


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TIME = _Check(_is_time, "an ISO time with a zone")
_COUNT = _Check(_is_count, "an integer")
_COUNTS = _Check(lambda v: isinstance(v, dict) and all(map(_is_count, v.values())), "a mapping of integers")
_MAPPING = _Check(lambda v: isinstance(v, dict), "a mapping")
_LIST = _Check(lambda v: isinstance(v, list), "a list")
_ERROR = _Check(lambda v: v is None or isinstance(v, str), "a string or null")
_RUN_FIELDS = {"started": _TIME, "finished": _TIME, "exit_code": _COUNT,
               "duration_seconds": _Check(lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                                          "a number"),
               "feeds_rewritten": _COUNT, "unit_errors": _COUNT}  # (these two: in runs[] only)
# status.json "runs": the history of the latest runs, for the status page (report/).
RUNS_KEPT, RUNS_HOURS = 400, 24  # 24 h of 5-minute runs is 288
_ACCOUNT_FIELDS = {
    "last_attempt": _TIME, "last_success": _TIME, "last_error": _ERROR, "units": _MAPPING,
    "requests": _COUNTS, "responses": _COUNTS, "responses_total": _COUNTS, "feeds_rewritten": _COUNT,
    "feeds_rewritten_total": _COUNT, "unit_errors": _COUNT, "units_fetched": _COUNT,
    "conflicts": _MAPPING, "imports_failing": _MAPPING, "imports_blind": _LIST, "write_back_off": _ERROR,
    "work_orders_left": _LIST,
}
_WATCH_FIELDS = ("conflicts", "imports_failing", "imports_blind", "write_back_off", "work_orders_left")
_UNIT_FIELDS = {
    "last_attempt": _TIME, "last_success": _TIME, "last_change": _TIME, "last_error": _ERROR,
    "events": _COUNT, "file": _Check(lambda v: isinstance(v, str), "a string"),
    "rewritten": _Check(lambda v: isinstance(v, bool), "a boolean"), "retired": _TIME,
}


def record_run(state_dir: Path, report: SyncReport, started: dt.datetime, finished: dt.datetime,
               exit_code: int, stuck: list[str] | None = None) -> dict[str, Any]:
    """Merge ``report`` into the status, store it (one transaction), and return it. A lock found
    held by a run that may be stuck is recorded, and described in ``stuck`` (the caller
    prints it) only the first time. The caller holds the status lock."""
    status = load_status(state_dir)
    status["run"] = {
        "started": _iso(started), "finished": _iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "exit_code": exit_code,
    }
    when = _iso(finished)
    for account, result in report.accounts.items():
        entry = status["accounts"].setdefault(account, {"units": {}})
        entry.pop("lock_stuck", None)
        entry["last_attempt"] = when
        entry["host"] = HOST  # (several hosts may share the state: sync/leases.py)
        entry["last_error"] = _public(result.error)
        if result.error is None:
            entry["last_success"] = when
        entry["requests"] = _plain(result.requests)
        responses = {f"{op} {status}": n for (op, status), n in result.responses.items()}
        entry["responses"] = _plain(responses)
        # Totals over all runs, for Prometheus counters.
        totals = entry.setdefault("responses_total", {})
        for key, count in responses.items():
            totals[key] = totals.get(key, 0) + count
        rewritten = sum(1 for u in result.units if u.rewritten and (u.error is None or u.verdict))
        entry["feeds_rewritten"] = rewritten
        entry["feeds_rewritten_total"] = entry.get("feeds_rewritten_total", 0) + rewritten
        entry["unit_errors"] = sum(1 for u in result.units if u.error)
        entry["units_fetched"] = result.fetched
        entry["breaker"] = result.breaker
        if result.imports is not None:  # the double-booking watch (imports/watch.py)
            entry["conflicts"] = result.imports.conflicts
            entry["imports_failing"] = {name: _public(error)
                                        for name, error in sorted(result.imports.failed.items())}
            entry["imports_blind"] = list(result.imports.blind)
            entry["write_back_off"] = result.imports.writes.off
            entry["work_orders_left"] = result.imports.writes.left
        elif not result.watching:  # no imports (any more): nothing is watched, nothing open
            for key in _WATCH_FIELDS:
                entry.pop(key, None)
        units, holds, retired = entry["units"], result.holds, result.retired
        for outcome in result.units:  # (10,000 a tick: written for speed)
            unit = units.get(outcome.unit_id)
            if unit is None:
                unit = units[outcome.unit_id] = {}
            error = outcome.error
            unit["last_attempt"] = when
            if error is None:
                unit["last_error"] = None
                unit["last_success"] = when
            else:
                unit["last_error"] = _public(error)
            if error is None or outcome.verdict:  # published (a held feed too)
                unit["events"] = outcome.events
                unit["file"] = _public(str(outcome.path))
                unit["rewritten"] = outcome.rewritten
                if outcome.rewritten:
                    unit["last_change"] = when
        synced = {o.unit_id for o in result.units}
        for unit_id in retired:  # known to status even if never published
            units.setdefault(unit_id, {})
        for unit_id, unit in units.items():
            unit["held"] = holds.get(unit_id)
            if unit_id in retired:
                unit["retired"] = retired[unit_id]
            elif "retired" in unit and unit_id in synced:  # it came back
                del unit["retired"]
    for account, holder in report.stuck.items():
        entry = status["accounts"].setdefault(account, {"units": {}})
        mark = {"pid": holder.pid, "since": _iso(holder.since) if holder.since else None}
        if entry.get("lock_stuck") != mark and stuck is not None:
            stuck.append(f"{account}: not synced: {holder.describe()} holds its lock, longer than a run "
                         "may last; that run may be stuck (its feeds are not updated until it ends)")
        entry["lock_stuck"] = mark
    outcomes = [u for result in report.accounts.values() for u in result.units]
    this_run = {**status["run"], "unit_errors": sum(1 for u in outcomes if u.error),
                "feeds_rewritten": sum(1 for u in outcomes if u.rewritten and (u.error is None or u.verdict))}
    status["runs"] = _latest_runs([*status.get("runs", []), this_run], finished)
    save_status(state_dir, status)
    return status


def _latest_runs(runs: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Return the runs that finished in the last RUNS_HOURS before ``now``, at most RUNS_KEPT."""
    since = now - dt.timedelta(hours=RUNS_HOURS)
    return [r for r in runs if dt.datetime.fromisoformat(r["finished"]) >= since][-RUNS_KEPT:]


def record_acceptance(state_dir: Path, account: str, by: str, at: dt.datetime,
                      accepted: list[tuple[str, Any]], *, whole: bool) -> None:
    """Record an operator's ``accept`` in the status (the latest 20 per account). The
    caller holds the status lock."""
    status = load_status(state_dir)
    entry = status["accounts"].setdefault(account, {"units": {}})
    history = entry.get("accepted") if isinstance(entry.get("accepted"), list) else []
    history.append({"by": by, "at": _iso(at), "units": [unit for unit, _ in accepted], "whole_account": whole,
                    "nights": sum(spans.count(hold.lost) for _, hold in accepted)})
    entry["accepted"] = history[-20:]
    save_status(state_dir, status)


def _public(text: str | None) -> str | None:
    """status.db is readable by a monitoring group: no secret feed name goes into it."""
    return mask_feed_tokens(text) if text else text


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
                         "events": state.get("events"), "file": _public(state.get("file")),
                         "last_error": _public(state.get("last_error") or entry.get("last_error")),
                         "held": bool(state.get("held")), "retired": state.get("retired")})
    return rows


def configured_rows(rows: list[dict[str, Any]], wanted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the feed rows of what the config still publishes (``wanted``: account ->
    its ``units``, "all" or ids): removed accounts or units are not stale feeds; retired
    units (feeds/lifecycle.py) are kept, to be shown as such."""
    return [r for r in rows if r["account"] in wanted and (
        wanted[r["account"]] == "all" or r["unit"] in wanted[r["account"]] or r["retired"])]


ALERTING = frozenset({"stale", "held"})  # the healths `status` exits 2 for


def feed_health(row: dict[str, Any], max_age: dt.timedelta) -> str:
    """Return a feed row's health: "retired" (no longer listed or selected: served unchanged,
    never an alert), "held" (the publish policy holds a loss of nights back), "stale" (never
    published fresh, or longer ago than ``max_age``), "failed" (its last attempt failed, but
    the feed is younger than ``max_age``) or "fresh". ``ALERTING`` says which need an operator."""
    if row["retired"]:
        return "retired"
    if row["held"]:
        return "held"
    if row["age_seconds"] is None or row["age_seconds"] > max_age.total_seconds():
        return "stale"
    return "failed" if row["last_error"] else "fresh"


def account_notes(status: dict[str, Any], accounts: set[str]) -> list[dict[str, str]]:
    """Return what needs an operator at account level, for ``accounts``: an account whose
    last run failed as a whole (wrong password, Escapia down: its feeds then age without a
    unit error of their own) or that no run has synced yet, a run that may be stuck
    holding its lock, or its breaker holding every unexplained loss."""
    notes = []
    entries = status.get("accounts", {})
    for account in sorted(accounts - set(entries)):
        notes.append({"account": account, "problem": "never synced (no run has recorded it yet)"})
    for account, entry in sorted(entries.items()):
        if account not in accounts:
            continue
        stuck, breaker, error = entry.get("lock_stuck"), entry.get("breaker"), entry.get("last_error")
        if error:
            since = entry.get("last_success")
            notes.append({"account": account, "problem": f"last run failed at {entry.get('last_attempt')}: "
                          f"{error} (last success: {since or 'never'})"})
        if isinstance(stuck, dict):
            notes.append({"account": account, "problem": f"not synced: pid {stuck.get('pid')} has held its "
                          f"lock since {stuck.get('since')}; that run may be stuck"})
        if isinstance(breaker, dict):
            notes.append({"account": account, "problem": f"breaker: {breaker.get('units')} of "
                          f"{breaker.get('fetched')} units lost nights at once at {breaker.get('since')}; "
                          f"every unexplained loss is held until `escapia-ical accept --account {account}`"})
        notes += _watch_notes(account, entry)
    return notes


def _watch_notes(account: str, entry: dict[str, Any]) -> list[dict[str, str]]:
    """The double-booking watch's open conflicts, and the exports failing for so long that
    their units are not watched (imports/watch.py)."""
    notes = []
    conflicts = entry.get("conflicts")
    for conflict in conflicts.values() if isinstance(conflicts, dict) else ():
        if isinstance(conflict, dict):
            notes.append({"account": account, "unit": str(conflict.get("unit")), "kind": "conflict",
                          "problem": f"{conflict.get('unit')}: {conflict.get('text')} (open since "
                                     f"{conflict.get('since')})"})
    blind = entry.get("imports_blind")
    failing = entry.get("imports_failing") if isinstance(entry.get("imports_failing"), dict) else {}
    for name in blind if isinstance(blind, list) else ():
        unit, _, channel = str(name).rpartition(" ")
        notes.append({"account": account, "unit": unit, "kind": "import",
                      "problem": f"{unit}: not watched for double bookings: its {channel} export keeps "
                                 f"failing ({failing.get(name) or 'see the sync log'})"})
    if isinstance(entry.get("write_back_off"), str):
        notes.append({"account": account, "kind": "write_back", "problem": entry["write_back_off"]})
    left = entry.get("work_orders_left")
    if isinstance(left, list) and left:
        notes.append({"account": account, "kind": "write_back",
                      "problem": "work orders escapia-ical created and no longer manages (their export or "
                                 "block_in_escapia left the config): " + ", ".join(map(str, left[:20]))
                                 + "; close them in Escapia if they are not needed"})
    return notes


def run_note(status: dict[str, Any], now: dt.datetime, max_age: dt.timedelta) -> str | None:
    """Return why the runs themselves need an operator — none has finished, or the last
    finished longer than ``max_age`` ago (cron stopped, or every run hangs) — or None."""
    finished = status.get("run", {}).get("finished")
    if not finished:
        return "no sync has finished yet"
    age = (now - dt.datetime.fromisoformat(finished)).total_seconds()
    if age > max_age.total_seconds():
        return (f"the last sync finished {format_age(age)} ago ({finished}), more than --max-age "
                f"{format_age(max_age.total_seconds())}: is cron running?")
    return None


def format_age(seconds: float | None) -> str:
    """Return an age as ``42s``, ``7m``, ``3h`` or ``2d`` (``never`` for None)."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
