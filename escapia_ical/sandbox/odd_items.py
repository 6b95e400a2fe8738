"""Odd but contract-legal NonAvailability items: the content fault ``odd_items`` (applied by
:mod:`.faults` to HSAPI GetUnitNonAvailability answers only, after their ``$id``s are set).

The published artefacts allow each: ``NonAvailability`` has no required field, the service
serialises with Json.NET reference handling (``{"$ref": "<$id>"}`` repeats an object), and
.NET's empty date is ``0001-01-01T00:00:00`` (API-NOTES.md, "Added after a review").

=============  ==================================================================
``item``       what the answer gets
=============  ==================================================================
no_range       one more item without ``dateRange`` (``{"$id": ...}`` only)
null           one more item that is ``null``
ref            one more item ``{"$ref": <$id of the first item>}`` (no items: unchanged)
empty_end      the first item's ``endDate`` becomes ``0001-01-01T00:00:00`` (no items:
               one item from today with that end)
datetimes      every date as ``YYYY-MM-DDT00:00:00``, as .NET writes a DateTime
=============  ==================================================================

Which of these the real service sends, and when, is unknown: that they occur at all is the
review's reading of the contract; how they are combined here is invented.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.faults import Answer, Fault

ITEMS = ("no_range", "null", "ref", "empty_end", "datetimes")
FAULTS: dict[str, dict[str, Any]] = {"odd_items": {"item": "ref"}}
EMPTY_DATE = "0001-01-01T00:00:00"


def check_params(name: str, p: dict[str, Any]) -> None:
    """Raise ValueError for an unknown ``item``."""
    if p["item"] not in ITEMS:
        raise ValueError(f"{name}: item must be one of {ITEMS}, got {p['item']!r}")


def apply(fault: Fault, ctx: dict, answer: Answer) -> Answer | None:
    """Return ``answer`` with the odd item, or None when it cannot be added."""
    if answer.status != 200 or ctx.get("op") != "GetUnitNonAvailability":
        return None
    try:
        items = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    changed = _odd(fault.params["item"], items)
    if changed is None:
        return None
    answer.body = json.dumps(changed, ensure_ascii=False).encode("utf-8")
    return answer


def _odd(kind: str, items: list) -> list | None:
    next_id = str(1 + max((int(i["$id"]) for i in _objects(items) if str(i.get("$id", "")).isdigit()),
                          default=0))
    if kind == "no_range":
        return [*items, {"$id": next_id}]
    if kind == "null":
        return [*items, None]
    firsts = [i for i in items if isinstance(i, dict) and isinstance(i.get("dateRange"), dict)]
    if kind == "ref":
        return [*items, {"$ref": firsts[0]["$id"]}] if firsts and "$id" in firsts[0] else None
    if kind == "empty_end":
        if not firsts:
            today = dt.date.today().isoformat()
            return [{"$id": next_id, "dateRange": {"$id": str(int(next_id) + 1), "startDate": today,
                                                   "endDate": EMPTY_DATE}}]
        firsts[0]["dateRange"]["endDate"] = EMPTY_DATE
        return items
    for item in firsts:  # datetimes
        for key in ("startDate", "endDate"):
            value = item["dateRange"].get(key)
            if isinstance(value, str) and len(value) == 10:
                item["dateRange"][key] = f"{value}T00:00:00"
    return items if firsts else None


def _objects(value: Any) -> list[dict]:
    if isinstance(value, dict):
        return [value, *(o for v in value.values() for o in _objects(v))]
    if isinstance(value, list):
        return [o for v in value for o in _objects(v)]
    return []
