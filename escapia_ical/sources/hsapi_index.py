"""HSAPI's reservations and holds of a whole account, for the kind index (sync/kind_index.py).

One paged SearchReservationSummaries without a unit filter, every hold type, the stays
overlapping the feed window: production clients page millions of records in one call, so
one large page is asked for and the pages are walked until ``totalCount``. A walk that ends
before it (an empty page) is an error, never a complete list: the stays past the cut would
look cancelled. Of each summary only its id, unit, dates and kind (from ``holdType``) are
kept (:func:`~escapia_ical.sources.hsapi_decode.parse_reservation_page`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from escapia_ical.errors import SourceError
from escapia_ical.model import FeedWindow
from escapia_ical.sources.hsapi_decode import Reservation, parse_reservation_page

INDEX_PAGE_SIZE = 5000
MAX_PAGES = 10_000
HOLD_TYPES = ["None", "Owner", "Maintenance", "SoftBlock", "GroupSoftBlock", "GuestOfOwner", "Unavailable"]

Call = Callable[..., Any]  # HsapiSource._call


def search_reservation_index(call: Call, check: Callable[[], None],
                             window: FeedWindow) -> tuple[dict[str, Reservation], int]:
    """Return every reservation and hold with a night in ``window`` (any unit), by id, and
    how many summaries could not be kept (no id or no unit). ``check`` raises when the
    run's deadline passed (between pages). Raise SourceError if the walk ends before its
    totalCount or a page only repeats what was read."""
    found: dict[str, Reservation] = {}
    unusable = 0
    for page in range(1, MAX_PAGES + 1):
        if page > 1:
            check()
        body = call("POST", "SearchReservationSummaries", json={
            "specification": {
                # window.end is the day after the last night: whether Escapia reads endDate
                # inclusively or not, every stay with a night in the window is among the
                # results (inclusively, also those arriving that day: harmless).
                "stayDateRangeSearchSpecification": {
                    "dateRange": {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()},
                    "dateRangeSearchMethod": "Overlap"},
                "holdTypes": HOLD_TYPES,
                "sortingMethod": "CheckInChronological",  # a stable order to page through
            },
            "pageSize": INDEX_PAGE_SIZE,
            "pageNumber": page,
        })
        results, total = parse_reservation_page(body)
        fresh = [r for r in results if r.id is None or r.id not in found]
        if results and not fresh:
            raise SourceError(f"SearchReservationSummaries: page {page} repeats reservations already read")
        for reservation in fresh:
            if reservation.id is None or reservation.unit is None:
                unusable += 1
            else:
                found[reservation.id] = reservation
        read = len(found) + unusable
        if not results and total is not None and read < total:
            raise SourceError(f"SearchReservationSummaries: page {page} is empty but totalCount is {total} "
                              f"and {read} were read: the list is incomplete")
        if not results or (total is not None and read >= total):
            return found, unusable
    raise SourceError(f"SearchReservationSummaries: more than {MAX_PAGES} pages")
