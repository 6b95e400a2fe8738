"""Work orders in the incremental sync: the blocks the change feed never shows.

A work order that removes a unit from availability is not a reservation, so
GetReservationChanges never mentions it. Each tick therefore takes one cheap look at the
open work orders (SearchWorkOrders, every status but Completed, all pages: one request for
up to 1,000 orders) and compares each with what the account state remembers of it (unit,
removes?, start, end, status: nothing else is kept). A new, changed or vanished order
re-fetches its unit(s) in the same tick.

A changed or vanished order is *not* evidence for the publish policy: the nights it blocked
may still be booked by a hold or a stay the change feed never showed this tracker, and a
GetWorkOrder that is not granted must not stop the account. Nights its unit's calendar now
frees are judged like any other loss: the reservations view (SearchReservationSummaries with
every hold type, plus the open work orders) shows them free or booked.

Without the grant (HTTP 403) the run says so once and the tracker falls back to a shorter
reconcile (``work_orders_fallback_hours``, see :mod:`.incremental`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import AuthError, DeadlineReached, SourceError
from escapia_ical.sources.hsapi import HsapiSource
from escapia_ical.sources.hsapi_work_orders import WorkOrder, WorkOrdersForbidden

log = logging.getLogger(__name__)


@dataclass
class WorkOrderTick:
    """What this tick learnt of the work orders."""

    orders: dict[str, WorkOrder] | None  # to remember (None: never read)
    touched: set[str] = field(default_factory=set)  # units to fetch
    forbidden: bool = False


def watch_work_orders(source: HsapiSource, account: HsapiAccount, known: dict[str, WorkOrder] | None,
                      today: dt.date, deadline: float) -> WorkOrderTick:
    """Compare the open work orders with ``known`` (what the state remembers); return the
    units to fetch. A failure to read them other than
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
    return tick
