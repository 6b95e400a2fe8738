"""Work orders in the incremental sync: the blocks the change feed never shows.

A work order that removes a unit from availability is not a reservation, so
GetReservationChanges never mentions it. Each tick therefore takes one cheap look at the
open work orders (SearchWorkOrders, every status but Completed, all pages: one request for
up to 1,000 orders) and compares each with what the account state remembers of it (unit,
removes?, start, end, status: nothing else is kept). A new, changed or vanished order
re-fetches its unit(s) in the same tick.

A changed or vanished order is *evidence* for the publish policy, like a cancelled
reservation, only once GetWorkOrder confirms it: Completed, no longer removing the unit, or
its removal dates changed. Its old nights (the end read exclusively, the fewest) minus its
new ones (read inclusively, the most) are then counted as freed.

Without the grant (HTTP 403) the run says so once and the tracker falls back to a shorter
reconcile (``work_orders_fallback_hours``, see :mod:`.incremental`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import AuthError, DeadlineReached, SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.sources.hsapi import HsapiSource
from escapia_ical.sources.hsapi_work_orders import WorkOrder, WorkOrdersForbidden

log = logging.getLogger(__name__)


@dataclass
class WorkOrderTick:
    """What this tick learnt of the work orders."""

    orders: dict[str, WorkOrder] | None  # to remember (None: never read)
    touched: set[str] = field(default_factory=set)  # units to fetch
    freed: dict[str, list[Span]] = field(default_factory=dict)  # unit -> nights confirmed freed
    forbidden: bool = False


def watch_work_orders(source: HsapiSource, account: HsapiAccount, known: dict[str, WorkOrder] | None,
                      today: dt.date, deadline: float) -> WorkOrderTick:
    """Compare the open work orders with ``known`` (what the state remembers); return the
    units to fetch and the nights confirmed freed. A failure to read them other than
    refused credentials or the deadline is a warning: ``known`` is kept and read again
    at the next tick (the reconcile still covers every unit)."""
    try:
        current = source.open_work_orders(today, deadline)
    except WorkOrdersForbidden as exc:
        log.warning("%s: %s: work orders show when their unit is fetched, every %g h "
                    "(work_orders_fallback_hours)", account.name, exc, account.work_orders_fallback_hours)
        return WorkOrderTick(known, forbidden=True)
    except (AuthError, DeadlineReached):
        raise
    except SourceError as exc:
        log.warning("%s: work orders not read this tick (%s); read again at the next", account.name, exc)
        return WorkOrderTick(known)
    tick = WorkOrderTick(current)
    for order_id in sorted(set(current) | set(known or {})):
        now, before = current.get(order_id), (known or {}).get(order_id)
        if now == before or not any(w and w.removes for w in (now, before)):
            continue  # unchanged, or never removing its unit
        tick.touched |= {w.unit for w in (now, before) if w}
        if before is None or before.surely_blocked() is None:
            continue  # new: nothing it blocked can be freed
        if time.monotonic() > deadline:
            raise DeadlineReached("the run deadline passed while confirming work orders; they are "
                                  "read again at the next run")
        confirmed = source.work_order(order_id)
        if confirmed is None:  # unknown to Escapia now: shows nothing (the calendar decides)
            continue
        tick.touched.add(confirmed.unit)
        still = confirmed.blocks() if confirmed.unit == before.unit else None
        old = [before.surely_blocked()]
        if still is None or (confirmed.start, confirmed.end) != (before.start, before.end):
            nights = spans.subtract(old, [still] if still else [])
            tick.freed[before.unit] = spans.union(tick.freed.get(before.unit, []), nights)
    # A night another open work order of the unit may book is not freed by this one.
    for unit, nights in tick.freed.items():
        tick.freed[unit] = spans.subtract(nights, [b for w in current.values() if w.unit == unit
                                                   for b in [w.blocks()] if b])
    return tick
