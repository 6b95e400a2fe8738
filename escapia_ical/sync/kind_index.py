"""The kind index of an HSAPI account: which stay or hold books which nights of which unit,
and of what kind (:mod:`escapia_ical.feeds.kinds`).

Non-availability stays the authority on *which* nights are blocked; the index only labels
them. It is the change tracker's ``reservations`` (id -> unit, first night, departure,
kind), fed two ways:

* every tick, for free: the GetReservationById lookups the change feed already causes;
* when ``kinds_wanted`` (a feed profile needs kinds), one account-wide paged
  SearchReservationSummaries (:meth:`HsapiSource.reservation_index`) once every
  ``reconcile_hours``, at a full sync (no cursor) and when the unit list gains a unit (a
  refresh keeps only the stays of the units it publishes). Without ``kinds_wanted`` it
  never costs a request. The daily roll and the profiles read the index from state.

A refresh adds stays and updates their dates and kinds at once, but is not trusted to drop
them: a stay with nights still to come that it does not list (and that the change feed did
not name this tick) is dropped only when the next refresh lacks it too. A past stay it no
longer lists is dropped at once. A refresh that fails is a warning: the index is kept and
the refresh tried again at the next tick. Stays that ended before the feed window are
forgotten. Only ids, units, dates and kinds are kept: never a guest or an amount.

*Claims* (unit -> kind -> nights) join the index with the open work orders that remove
their unit from availability (kind ``maintenance``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import AuthError, DeadlineReached, SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.model import FeedWindow
from escapia_ical.sources.hsapi import HsapiSource
from escapia_ical.sources.hsapi_work_orders import WorkOrder
from escapia_ical.sync.change_state import Stay

log = logging.getLogger(__name__)

MAX_REMEMBERED_RESERVATIONS = 50_000
Claims = dict[str, dict[str, list[Span]]]  # unit -> kind -> nights (normalised spans)


RETRY = dt.timedelta(hours=1)  # after a failed refresh (at most reconcile_hours)


@dataclass
class KindTick:
    """What the state keeps of the refreshes: when the last one succeeded, the stays with
    nights to come it did not list (dropped if the next one lacks them too), whether a
    refresh is owed (one that was due for a reason of its own — a full sync, a new unit —
    failed) and when the last one failed (the next try waits ``RETRY``)."""

    refreshed_at: str | None = None
    missed: list[str] = field(default_factory=list)
    owed: bool = False
    failed_at: str | None = None


def update_index(source: HsapiSource, account: HsapiAccount, known: dict[str, Stay], last: KindTick, *,
                 tracked: set[str], named: set[str], now: dt.datetime, window: FeedWindow,
                 deadline: float, full_sync: bool) -> tuple[dict[str, Stay], KindTick]:
    """Return the index to go on with (``known`` without the stays that ended before
    ``window``, refreshed if it is due) and what to remember of the refreshes. ``named``:
    the reservations the change feed names this tick (their lookups decide). Raise
    AuthError or DeadlineReached from the refresh; any other SourceError is a warning (the
    first of a row; the next ones are said at -v) and the refresh is tried again after
    ``RETRY``: a refusal for good (HTTP 403, the operation not granted) costs one request
    an hour, not one a tick."""
    index = {r: stay for r, stay in known.items() if not (stay[2] and stay[2] <= window.start)}
    owed = last.owed or (full_sync and account.kinds_wanted)
    tick = KindTick(last.refreshed_at, [r for r in last.missed if r in index and r not in named], owed,
                    last.failed_at)
    if not refresh_due(account, last.refreshed_at, now, owed) or _backing_off(account, last.failed_at, now):
        return index, tick
    try:
        listed = source.reservation_index(window, deadline)
    except (AuthError, DeadlineReached):
        raise
    except SourceError as exc:
        retry = min(RETRY, dt.timedelta(hours=account.reconcile_hours))
        log.log(logging.INFO if last.failed_at else logging.WARNING,
                "%s: kinds of blocks not refreshed (%s); index kept, the refresh tried again in %g min",
                account.name, exc, retry.total_seconds() / 60)
        tick.failed_at = now.isoformat()
        return index, tick
    index, missed = _merged(account, index, set(tick.missed), listed, tracked=tracked, named=named,
                            today=now.date(), window=window)
    return index, KindTick(now.isoformat(), sorted(missed))


def refresh_due(account: HsapiAccount, refreshed_at: str | None, now: dt.datetime, owed: bool) -> bool:
    """Is the account-wide refresh due? Only with ``kinds_wanted``: never refreshed, owed
    (a full sync, a tick that lists a new unit, or such a refresh that failed), or
    ``reconcile_hours`` after the last one (or a last one in the future: a clock set back
    must not stop the refreshes)."""
    if not account.kinds_wanted:
        return False
    try:
        age = now - dt.datetime.fromisoformat(refreshed_at or "")
    except (TypeError, ValueError):
        return True
    return owed or not dt.timedelta(0) <= age < dt.timedelta(hours=account.reconcile_hours)


def _backing_off(account: HsapiAccount, failed_at: str | None, now: dt.datetime) -> bool:
    """Did a refresh fail less than ``RETRY`` (at most reconcile_hours) ago?"""
    try:
        age = now - dt.datetime.fromisoformat(failed_at or "")
    except (TypeError, ValueError):
        return False
    return dt.timedelta(0) <= age < min(RETRY, dt.timedelta(hours=account.reconcile_hours))


def _merged(account: HsapiAccount, index: dict[str, Stay], missed: set[str], listed: Mapping, *,
            tracked: set[str], named: set[str], today: dt.date,
            window: FeedWindow) -> tuple[dict[str, Stay], set[str]]:
    """Return the index with a refresh's stays (``listed``: id -> Reservation) merged in,
    and the stays it missed for the first time (see the module docstring)."""
    merged: dict[str, Stay] = {}
    first_misses, dropped = set(), set()
    for reservation_id, stay in index.items():
        if reservation_id in listed:
            continue  # replaced by what the refresh says of it
        _, start, end, _ = stay
        covered = start and end and start < window.end and end > window.start
        if reservation_id in named or not covered:  # the lookup decides; or the refresh cannot tell
            merged[reservation_id] = stay
        elif end > today and reservation_id not in missed:
            first_misses.add(reservation_id)
            merged[reservation_id] = stay
        elif end > today:
            dropped.add(reservation_id)
    for reservation_id, reservation in listed.items():
        if reservation.unit in tracked:  # stays of units not published are not kept
            merged[reservation_id] = (reservation.unit, reservation.start, reservation.end, reservation.kind)
    if first_misses:
        log.info("%s: %d stay(s) with nights to come missing from the kinds refresh are kept until the next "
                 "refresh confirms it: %s", account.name, len(first_misses),
                 ", ".join(sorted(first_misses)[:5]))
    if dropped:
        log.info("%s: %d stay(s) missing from two kinds refreshes in a row are forgotten: %s", account.name,
                 len(dropped), ", ".join(sorted(dropped)[:5]))
    if len(merged) > MAX_REMEMBERED_RESERVATIONS:
        log.warning("%s: %d stays in the feed window; only the %d arriving first are kept: the nights of the "
                    "others are labelled 'other'", account.name, len(merged), MAX_REMEMBERED_RESERVATIONS)
    # The latest arrivals first: the cap (which keeps the last entries) drops them first.
    ordered = sorted(merged.items(), key=lambda item: item[1][1] or dt.date.max, reverse=True)
    return dict(ordered), first_misses


def claims_of(index: Mapping[str, Stay], orders: Mapping[str, WorkOrder] | None, units: set[str] | None,
              window: FeedWindow | None = None) -> Claims:
    """Return unit -> kind -> nights booked, from the index and the work orders that remove
    their unit (``maintenance``), for ``units`` (None: every unit) that have any; clipped
    to ``window`` if given. The sync labels with unclipped claims: a stay crossing the
    window's start keeps its kind over its whole block, so its profile events (and their
    UIDs) do not change as the window moves."""
    found: dict[str, dict[str, list[Span]]] = {}
    booked = [(unit, kind, (start, end)) for unit, start, end, kind in index.values() if start and end]
    booked += [(w.unit, "maintenance", nights) for w in (orders or {}).values() for nights in [w.blocks()]
               if nights]
    for unit, kind, nights in booked:
        if units is None or unit in units:
            found.setdefault(unit, {}).setdefault(kind, []).append(nights)
    claims: Claims = {}
    for unit, kinds in found.items():
        clipped = {kind: spans.clip(nights, window.start, window.end) if window else spans.normalize(nights)
                   for kind, nights in kinds.items()}
        if any(clipped.values()):
            claims[unit] = {kind: nights for kind, nights in clipped.items() if nights}
    return claims
