"""changes.json, read part by part: a part of the wrong shape is reported and replaced by
its empty value (the incremental sync then rebuilds it), so a damaged file never fails the
account. See :mod:`escapia_ical.sync.incremental` for what each part holds."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from escapia_ical.feeds.kinds import KINDS
from escapia_ical.model import Unit
from escapia_ical.sources.hsapi_decode import Change
from escapia_ical.sources.hsapi_work_orders import WorkOrder
from escapia_ical.state import describe

log = logging.getLogger(__name__)

Stay = tuple[str, dt.date | None, dt.date | None, str]  # unit, first night, departure, kind
STAY_KINDS = tuple(k for k in KINDS if k != "other")  # what a stay's holdType can make it


def checked(data: Any, path: Any) -> dict[str, Any]:
    """Return changes.json's content with every part of the wrong shape replaced by its
    empty value (and reported once), so that a damaged file never fails the account."""
    data = data if isinstance(data, dict) else {}
    bad: list[str] = []

    def part(key: str, convert, empty):
        if key not in data:
            return empty
        try:
            return convert(data[key])
        except (AttributeError, KeyError, TypeError, ValueError):
            bad.append(key)
            return empty

    checked = {
        "cursor": part("cursor", _version, None),
        "at_cursor": part("at_cursor", lambda v: [Change(*map(_text, _list(c))) for c in _list(v)], []),
        "units": part("units", lambda v: [Unit(_text(u["id"]), _text(u["name"]), _text(u.get("code", "")))
                                          for u in _list(v)], []),
        "listed_at": part("listed_at", lambda v: _text(v) if v else "", ""),
        "reservations": part("reservations", lambda v: {_text(k): _stay(s) for k, s in _dict(v).items()}, {}),
        "fetched": part("fetched", lambda v: {_text(k): _text(t) for k, t in _dict(v).items()}, {}),
        "pending": part("pending", lambda v: [_text(u) for u in _list(v)], []),
        "pages_of_many": part("pages_of_many", _flag, False),
        "work_orders": part("work_orders", lambda v: None if v is None else {
            _text(k): WorkOrder.from_json(k, w) for k, w in _dict(v).items()}, None),
        "work_orders_forbidden": part("work_orders_forbidden", _flag, False),
        "kinds_refreshed_at": part("kinds_refreshed_at", lambda v: _text(v) if v else None, None),
        "kinds_missed": part("kinds_missed", lambda v: [_text(r) for r in _list(v)], []),
        "kinds_owed": part("kinds_owed", _flag, False),
        "kinds_failed_at": part("kinds_failed_at", lambda v: _text(v) if v else None, None),
    }
    stays = checked["reservations"]
    if any(not kind for *_, kind in stays.values()):  # written before kinds: never refreshed
        checked["reservations"] = {r: (*stay[:3], stay[3] or "reservation") for r, stay in stays.items()}
        checked["kinds_refreshed_at"] = None
    if "reservations" in bad:  # the index is gone: refresh it at once, not in reconcile_hours
        checked["kinds_refreshed_at"] = None
    if bad:
        log.warning("state %s: ignoring %s (wrong shape); it is rebuilt", describe(path), ", ".join(bad))
    return checked


def _version(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("not a version")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not true or false")
    return value


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError("not a mapping")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _stay(value: Any) -> Stay:
    """One stay; its kind is "" if it was written before kinds (then read as a reservation)."""
    if isinstance(value, str):  # written by 0.1.0: the unit only
        return value, None, None, ""
    unit, start, end, *kind = _list(value)
    if len(kind) > 1 or kind and kind[0] not in STAY_KINDS:
        raise ValueError("not a stay")
    return (_text(unit), dt.date.fromisoformat(start) if start else None,
            dt.date.fromisoformat(end) if end else None, kind[0] if kind else "")


def to_json(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "at_cursor": [[c.reservation, c.kind, c.time] for c in data["at_cursor"]],
        "units": [{"id": u.id, "name": u.name, "code": u.code} for u in data["units"]],
        "reservations": {r: [u, s.isoformat() if s else None, e.isoformat() if e else None, kind]
                         for r, (u, s, e, kind) in data["reservations"].items()},
        "work_orders": None if data["work_orders"] is None else {
            i: w.to_json() for i, w in data["work_orders"].items()},
    }
