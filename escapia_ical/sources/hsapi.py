"""HSAPI, Escapia's REST API: units and their non-availability.

Contract: ../shared/escapia/hsapi-openapi-extract.json. Bearer tokens (hsapi_tokens.py)
are cached in state_dir (0600) and reused across runs until they expire; a 401 triggers one
refresh and one retry of the call.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import AuthError, DeadlineReached, SourceError, UnitNotFound
from escapia_ical.feeds import spans
from escapia_ical.feeds.ranges import range_from_api
from escapia_ical.feeds.spans import Span
from escapia_ical.model import Explanation, FeedWindow, Unit, UnitCalendar
from escapia_ical.sources import Notes
from escapia_ical.sources.hsapi_decode import (
    Change,
    Reservation,
    parse_changes,
    parse_json,
    parse_nonavailability,
    parse_reservation,
    parse_reservation_page,
    parse_unit_page,
)
from escapia_ical.sources.hsapi_index import HOLD_TYPES, search_reservation_index
from escapia_ical.sources.hsapi_tokens import BearerTokens
from escapia_ical.sources.hsapi_work_orders import (
    WorkOrder,
    WorkOrdersForbidden,
    get_work_order,
    save_work_order,
    search_open_work_orders,
)
from escapia_ical.sources.http import HttpClient, HttpStatusError, Sleep
from escapia_ical.state import AccountState

log = logging.getLogger(__name__)


class CursorRejected(SourceError):
    """Escapia does not accept the change-feed version we kept: a full sync is needed."""


def _check(deadline: float, doing: str = "reading the change feed") -> None:
    if time.monotonic() > deadline:
        raise DeadlineReached(f"the run deadline passed while {doing}; it continues at the next run")


API_HEADERS = {"x-homeaway-hasp-api-version": "10", "x-homeaway-hasp-api-endsystem": "EscapiaVRS"}
RESERVATIONS_VIEW = "Escapia's reservations"
# Results asked per page of SearchUnitSummaries and SearchReservationSummaries. Escapia
# answers a page size of millions in one call (API-NOTES: the production clients found),
# but a real UnitSummary carries feature groups, bed groups and policy texts (tens of KB):
# 250 lists 10,000 units in 40 requests, not 100, and keeps a page far below the 32 MiB an
# answer may hold (http_answers.MAX_BODY_BYTES).
PAGE_SIZE = 250
MAX_PAGES = 10_000
CHANGES_CLOSE = 200  # recent_version stops this close to the current version


class HsapiSource:
    """Reads one HSAPI account."""

    def __init__(self, account: HsapiAccount, state_dir: Path, *, sleep: Sleep | None = None,
                 now: Callable[[], dt.datetime] | None = None):
        self.account = account
        self.http = HttpClient(account.http, sleep=sleep)
        self.requests_by_operation = self.http.requests_by_operation
        self.responses_by_status = self.http.responses_by_status
        self.notes = Notes()
        self.largest_change_page = 0  # the most changes one GetReservationChanges answer held
        self.open_orders: dict[str, WorkOrder] | None = None  # this run's SearchWorkOrders, if read
        self.work_orders_forbidden = False  # SearchWorkOrders answered 403 in this run
        self.tokens = BearerTokens(account, self.http, AccountState(state_dir, account.name).token_path,
                                   now or (lambda: dt.datetime.now(dt.UTC)))

    # -- the Source interface -------------------------------------------------------

    def list_units(self) -> list[Unit]:
        """Return every distributed unit, walking all pages of SearchUnitSummaries. Raise
        DeadlineReached if the run's deadline (``http.deadline``) passes between pages."""
        units: dict[str, Unit] = {}
        skipped = 0  # summaries without a usable id still count toward totalCount
        for page in range(1, MAX_PAGES + 1):
            if page > 1 and time.monotonic() > self.http.deadline:
                raise DeadlineReached(f"SearchUnitSummaries: the run deadline passed after {page - 1} "
                                      "pages; the units are listed again at the next run")
            body = self._call("POST", "SearchUnitSummaries", json={
                # Every distributed unit, whatever its availability, in a stable order.
                "specification": {"returnUnavailableUnits": True, "sortingMethod": "UnitCodeAlphabetical"},
                "pageSize": PAGE_SIZE,
                "pageNumber": page,
            })
            found, total, problems = parse_unit_page(body)
            skipped += len(problems)
            for problem in problems:
                log.warning("%s: SearchUnitSummaries page %d: %s", self.account.name, page, problem)
            fresh = [u for u in found if u.id not in units]
            if found and not fresh:
                raise SourceError(f"SearchUnitSummaries: page {page} repeats units already seen")
            units.update((u.id, u) for u in fresh)
            if not body["results"] and total is not None and len(units) + skipped < total:
                # A page that ends the walk early: units past it would be taken as gone.
                raise SourceError(f"SearchUnitSummaries: page {page} is empty but totalCount is {total} and "
                                  f"{len(units) + skipped} were listed: the unit list is incomplete")
            if not body["results"] or (total is not None and len(units) + skipped >= total):
                return list(units.values())
        raise SourceError(f"SearchUnitSummaries: more than {MAX_PAGES} pages")

    def calendar(self, unit: Unit, window: FeedWindow) -> UnitCalendar:
        """Return the unit's blocked ranges over ``window``, converted to half-open form.
        GetUnitNonAvailability says nothing of what it covers: it is taken to cover the
        dates asked for. Ranges outside them are counted in ``notes`` and dropped; items
        that block nothing (null, no dateRange) are counted there too. Raise SourceError
        (a unit error: the last feed is kept) for an answer whose meaning is unclear
        (see :func:`parse_nonavailability`)."""
        what = f"GetUnitNonAvailability for unit {unit.id!r}"
        try:
            body = self._call("POST", "GetUnitNonAvailability", json={
                "dateRange": {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()},
                "nativePMSUnitID": unit.id,
            })
        except HttpStatusError as exc:
            if exc.status == 404:
                raise UnitNotFound(f"{what}: unit not found (HTTP 404)") from None
            raise
        ranges = []
        pairs, empty = parse_nonavailability(body, what)
        for line in empty:  # blocks nothing, as the contract allows: said once per run
            log.debug("%s: %s: %s", self.account.name, what, line)
            self.notes.add("NonAvailability items without a dateRange (no block)", unit.id,
                           f"{unit.id} {line}")
        for start, end in pairs:
            blocked = range_from_api(start, end, self.account.end_date)
            if blocked is None:  # (end before start is a SourceError: only date.max is left)
                self.notes.add("ranges ignored: no night after the start", unit.id,
                               f"{unit.id} {start}..{end}")
            elif blocked.end <= window.start or blocked.start >= window.end:
                self.notes.add("ranges ignored: outside the dates asked for", unit.id,
                               f"{unit.id} {start}..{end}")
            else:
                ranges.append(blocked)
        return UnitCalendar(tuple(ranges), ((window.start, window.end),))

    def explain(self, unit: Unit, nights: list[Span]) -> Explanation:
        """Return which of ``nights`` the unit's reservations, holds and open work orders
        leave free and which they book (SearchReservationSummaries, every hold type, all
        pages; work orders from this run's SearchWorkOrders). A stay's
        ``stayDateRange.endDate`` is the departure day. Without the work-order grant no
        night is said to be free."""
        start, end = nights[0][0], nights[-1][1]
        booked: list[Span] = []
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            _check(self.http.deadline, "reading reservations")
            body = self._call("POST", "SearchReservationSummaries", json={
                "specification": {
                    "unitNativePMSIDs": [unit.id],
                    # The day after the last night: whether Escapia reads endDate inclusively
                    # or not, every stay with one of the nights is among the results.
                    "stayDateRangeSearchSpecification": {
                        "dateRange": {"startDate": start.isoformat(), "endDate": end.isoformat()},
                        "dateRangeSearchMethod": "Overlap"},
                    "holdTypes": HOLD_TYPES,
                },
                "pageSize": PAGE_SIZE,
                "pageNumber": page,
            })
            found, total = parse_reservation_page(body)
            seen += len(found)
            # A stay of another unit (a server ignoring the filter) can only book more: kept.
            booked += [(r.start, r.end) for r in found]
            if not found or (total is not None and seen >= total):
                break
        else:
            raise SourceError(f"SearchReservationSummaries: more than {MAX_PAGES} pages")
        # Work orders book nights too, without being reservations. Without the grant the
        # view cannot see them, so it vouches for no night being free (only for booked ones).
        orders = self._work_orders_of(unit.id)
        booked += [b for b in (w.blocks() for w in orders or ()) if b]
        free = spans.subtract(nights, booked) if orders is not None else []
        view = RESERVATIONS_VIEW if orders is not None else f"{RESERVATIONS_VIEW} (work orders not readable)"
        return Explanation(view, tuple(free), tuple(spans.intersect(nights, booked)))

    def reservation_index(self, window: FeedWindow, deadline: float = math.inf) -> dict[str, Reservation]:
        """Return every reservation and hold of the account with a night in ``window``, by
        id, with its unit, stay and kind: ONE paged SearchReservationSummaries (a large
        page, walked until totalCount; see :mod:`.hsapi_index`). Raise SourceError if the
        walk ends before totalCount, DeadlineReached if ``deadline`` passes between pages."""
        found, unusable = search_reservation_index(self._call, lambda: _check(
            deadline, "reading the account's reservations"), window)
        if unusable:
            log.info("%s: SearchReservationSummaries: %d summaries without an id or unit left out",
                     self.account.name, unusable)
        return found

    # -- work orders --------------------------------------------------------------------

    def open_work_orders(self, today: dt.date, deadline: float = math.inf) -> dict[str, WorkOrder]:
        """Return every work order not Completed, by id (SearchWorkOrders, all pages), and
        keep them for :meth:`explain`. Raise WorkOrdersForbidden without the grant."""
        try:
            self.open_orders = search_open_work_orders(self._call, lambda: _check(
                deadline, "reading work orders"))
        except WorkOrdersForbidden:
            self.work_orders_forbidden = True
            raise
        return self.open_orders

    def work_order(self, order_id: str) -> WorkOrder | None:
        """Return one work order (GetWorkOrder); None if Escapia does not know it."""
        return get_work_order(self._call, order_id)

    def save_work_order(self, unit: str, start: dt.date, end: dt.date, description: str, *,
                        order_id: str | None = None, status: str = "Scheduled") -> WorkOrder:
        """Create or update a work order blocking ``unit`` (sources/hsapi_work_orders.py)."""
        return save_work_order(self._call, unit, start, end, description, order_id=order_id, status=status)

    def _work_orders_of(self, unit_id: str) -> list[WorkOrder] | None:
        """The unit's open work orders: from this run's search, else asked now; None if
        they cannot be read."""
        if self.open_orders is not None:
            return [w for w in self.open_orders.values() if w.unit == unit_id]
        if self.work_orders_forbidden:
            return None
        try:
            return list(search_open_work_orders(self._call, lambda: _check(
                self.http.deadline, "reading work orders"), unit=unit_id).values())
        except WorkOrdersForbidden:
            self.work_orders_forbidden = True
            return None

    # -- the change feed (incremental mode) ---------------------------------------------

    def changes_since(self, version: int, deadline: float = math.inf, *,
                      known_end: int | None = None) -> tuple[list[Change], int]:
        """Return the changes after ``version``, in the order Escapia sent them, and the
        version to ask from next time, calling GetReservationChanges until it reports no
        more — or, given ``known_end`` (the last version read before), until a page ends
        there: a page that stops exactly where the feed stood last time holds all there is.
        Raise CursorRejected if Escapia refuses ``version`` or answers one before it, and
        DeadlineReached if ``deadline`` (time.monotonic()) passes first."""
        changed: list[Change] = []
        for _ in range(MAX_PAGES):
            _check(deadline)
            page, end = self._changes_page(version)
            changed += page
            if not page or end in (version, known_end):
                return changed, end
            version = end
        raise SourceError(f"GetReservationChanges: more than {MAX_PAGES} calls")

    def recent_version(self, deadline: float = math.inf) -> int:
        """Return a change-feed version at most ``CHANGES_CLOSE`` changes before the current
        one, in about 2·log2(current) calls rather than reading the whole history.

        A full sync needs a cursor to continue from, not the history. A version is only
        taken once changes are seen after it, so the result never overshoots, whatever
        Escapia answers for versions it has not reached (nothing, or an error).
        """
        safe, probe, beyond = 0, 1024, None  # changes follow `safe`; none (or refusal) at `beyond`
        while beyond is None or beyond - safe > CHANGES_CLOSE:
            _check(deadline)
            try:
                ids, end = self._changes_page(probe)
            except CursorRejected:
                ids, end = [], probe
            if ids and end > probe:
                safe = end
            else:
                beyond = probe
            probe = safe * 2 if beyond is None else (safe + beyond) // 2
            if beyond is not None and probe <= safe:
                break
        return safe

    def _changes_page(self, version: int) -> tuple[list[Change], int]:
        """One GetReservationChanges call: (its changes, endVersion)."""
        try:
            body = self._call("GET", "GetReservationChanges", params={"startVersion": version})
        except HttpStatusError as exc:
            if exc.status in (400, 404, 410):
                raise CursorRejected(f"GetReservationChanges refused version {version} "
                                     f"(HTTP {exc.status})") from None
            raise
        changes, end = parse_changes(body)
        self.largest_change_page = max(self.largest_change_page, len(changes))
        if end is not None and end < version:
            raise CursorRejected(f"GetReservationChanges went back from {version} to {end}")
        return changes, version if end is None else end

    def reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation's unit, stay and whether it is cancelled (GetReservationById
        answers for cancelled ones too); None if Escapia does not know the reservation."""
        try:
            body = self._call("GET", "GetReservationById", params={"id": reservation_id})
        except HttpStatusError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_reservation(body, reservation_id)

    # -- calls and tokens -------------------------------------------------------------

    def _call(self, method: str, operation: str, *, json: Any = None,
              params: dict[str, Any] | None = None, retry: bool = True) -> Any:
        url = f"{self.account.base_url}/hsapi/{operation}"
        headers = {**API_HEADERS, "x-homeaway-hasp-api-pmcid": self.account.pmcid}
        for refreshed in (False, True):
            headers["Authorization"] = self.tokens.header(refresh=refreshed,
                                                          failed=headers.get("Authorization"))
            try:
                result = self.http.request(method, url, operation=operation, headers=headers, json=json,
                                           params=params, attempts=None if retry else 1)
            except HttpStatusError as exc:
                if exc.status != 401:
                    raise
                if refreshed:
                    raise AuthError(f"{operation}: HTTP 401 even with a fresh token") from None
                log.info("%s: %s answered 401; fetching a new token", self.account.name, operation)
                continue
            return parse_json(result.body, operation)
        raise AssertionError("unreachable")
