"""HSAPI probes: how the account's GetUnitNonAvailability end dates read, what its calendar
calls cover, and whether work orders are readable.

The requests the client does not expose (one page of units or reservations, the raw
non-availability pairs, SearchWorkOrders) are sent through ``HsapiSource._call`` — its
token handling, headers and HTTP policy — on purpose: the diagnosis must speak exactly as
a sync does. Only dates, counts and unit ids are kept from the answers: no guest data, no
reservation number.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from escapia_ical.diagnose.common import SAMPLE_UNITS, attempt, failed
from escapia_ical.diagnose.report import Finding
from escapia_ical.errors import AuthError, SourceError
from escapia_ical.model import FeedWindow
from escapia_ical.sources.hsapi import HOLD_TYPES, HsapiSource
from escapia_ical.sources.hsapi_decode import parse_nonavailability, parse_reservation_page, parse_unit_page
from escapia_ical.sources.http import HttpStatusError

ONE_DAY = dt.timedelta(days=1)
PAGE_SIZE = 100
MAX_RESERVATION_PAGES = 8  # of the sampled units' reservations
MIN_MATCHES = 3  # items matching a reservation needed for a verdict on end_date
FIT_SHARE = 0.9  # the share of matches one reading needs to fit


def probe_hsapi(source: HsapiSource, window: FeedWindow) -> dict[str, Finding]:
    """Return the HSAPI findings. Raise SourceError if not even the units can be listed
    (AuthError for refused credentials): then nothing else can be learnt."""
    units, total = _first_unit_page(source)
    if units:
        shown = f"{total} units distributed" + (f" (first page: {len(units)})" if total > len(units) else "")
        findings = {"units": Finding("ok", shown, data={"count": total})}
    else:
        findings = {"units": Finding("warning", "no unit is distributed to this partner: enable units in "
                                                "Escapia's Network Partners", data={"count": 0})}
    findings.update(_end_date_and_span(source, window, units))
    findings["work_orders"] = _work_orders(source)
    return findings


def _first_unit_page(source: HsapiSource) -> tuple[list[str], int]:
    body = source._call("POST", "SearchUnitSummaries", json={
        "specification": {"returnUnavailableUnits": True, "sortingMethod": "UnitCodeAlphabetical"},
        "pageSize": PAGE_SIZE, "pageNumber": 1})
    units, total, _problems = parse_unit_page(body)
    ids = [u.id for u in units]
    return ids, total if total is not None else len(ids)


def _reservation_page(source: HsapiSource, window: FeedWindow, page: int,
                      unit_ids: list[str] | None = None) -> tuple[list, int | None]:
    specification: dict[str, Any] = {
        "stayDateRangeSearchSpecification": {
            "dateRange": {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()},
            "dateRangeSearchMethod": "Overlap"},
        "holdTypes": HOLD_TYPES}
    if unit_ids:
        specification["unitNativePMSIDs"] = unit_ids
    body = source._call("POST", "SearchReservationSummaries",
                        json={"specification": specification, "pageSize": PAGE_SIZE, "pageNumber": page})
    return parse_reservation_page(body)


def _sampled_stays(source: HsapiSource, window: FeedWindow,
                   listed: list[str]) -> tuple[list[str], dict, bool]:
    """Return (the sampled units, {(unit, arrival): {departures}}, whether more stays exist
    than were read): units with the most stays on the first page, else the first listed."""
    first, _ = _reservation_page(source, window, 1)
    busiest = Counter(r.unit for r in first if r.unit)
    sample = [unit for unit, _ in busiest.most_common(SAMPLE_UNITS)] or listed[:SAMPLE_UNITS]
    departures: dict[tuple[str, dt.date], set[dt.date]] = {}
    if not busiest:
        return sample, departures, False
    seen, truncated = 0, True
    for page in range(1, MAX_RESERVATION_PAGES + 1):
        found, total = _reservation_page(source, window, page, sample)
        seen += len(found)
        for stay in found:
            departures.setdefault((stay.unit, stay.start), set()).add(stay.end)
        if not found or (total is not None and seen >= total):
            truncated = False
            break
    return sample, departures, truncated


def _end_date_and_span(source: HsapiSource, window: FeedWindow, listed: list[str]) -> dict[str, Finding]:
    stays = attempt(lambda: _sampled_stays(source, window, listed))
    if isinstance(stays, SourceError):
        return {"end_date": failed(stays, "reading reservations (SearchReservationSummaries)"),
                "calendar_span": Finding("skipped", "no unit to ask about: reservations could not be read")}
    sample, departures, truncated = stays
    items: dict[str, list[tuple[dt.date, dt.date]]] = {}
    errors: list[SourceError] = []
    for unit in sample:
        what = f"GetUnitNonAvailability for unit {unit!r}"
        answer = attempt(lambda unit=unit, what=what: parse_nonavailability(source._call(
            "POST", "GetUnitNonAvailability", json={
                "dateRange": {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()},
                "nativePMSUnitID": unit}), what)[0])  # (items without dates block nothing)
        if isinstance(answer, SourceError):
            errors.append(answer)
        else:
            items[unit] = answer
    if not items and errors:
        return {"end_date": failed(errors[0], "reading non-availability"),
                "calendar_span": failed(errors[0], "reading non-availability")}
    return {"end_date": _end_date_verdict(source.account.end_date, items, departures, truncated, errors),
            "calendar_span": _span(window, items)}


def _end_date_verdict(configured: str, items: dict, departures: dict, truncated: bool,
                      errors: list[SourceError]) -> Finding:
    """Match each non-availability item to a stay arriving the day it starts: its end is the
    departure (exclusive), the day before (inclusive), either (two such stays) or neither."""
    counts = Counter()
    for unit, pairs in items.items():
        for start, end in pairs:
            leaving = departures.get((unit, start))
            if not leaving:
                counts["unmatched"] += 1
                continue
            exclusive, inclusive = end in leaving, end + ONE_DAY in leaving
            counts["either" if exclusive and inclusive else "exclusive" if exclusive
                   else "inclusive" if inclusive else "neither"] += 1
    matched = counts["exclusive"] + counts["inclusive"]
    if matched < MIN_MATCHES:
        verdict = "not_enough_data"
    elif counts["exclusive"] >= FIT_SHARE * matched:
        verdict = "exclusive"
    elif counts["inclusive"] >= FIT_SHARE * matched:
        verdict = "inclusive"
    else:
        verdict = "mixed"
    if verdict == "not_enough_data":
        status, summary = "info", (f"not enough data: {matched} items match a stay (at least {MIN_MATCHES} "
                                   f"needed); configured end_date: {configured}")
    elif verdict == "mixed":
        status, summary = "warning", (f"mixed: the items fit neither reading; configured end_date: "
                                      f"{configured} (check a few stays by hand)")
    elif verdict == configured:
        status, summary = "ok", f"the data fits end_date: {verdict}, as configured"
    else:
        status, summary = "warning", (f"the data fits end_date: {verdict}, but the account has {configured}: "
                                      f"set end_date: {verdict}")
    details = [f"{counts['exclusive']} items end on the stay's departure day (exclusive), "
               f"{counts['inclusive']} the day before (inclusive), {counts['either']} could be either, "
               f"{counts['neither']} neither",
               f"{counts['unmatched']} items start on no stay's arrival (holds, work orders, contract "
               "dates?); "
               f"{len(items)} units sampled" + ("; more stays exist than were read" if truncated else "")]
    details += [f"not read: {error}" for error in errors]
    data = {"verdict": verdict, "configured": configured, **{k: counts[k] for k in
            ("exclusive", "inclusive", "either", "neither", "unmatched")},
            "units_sampled": len(items), "stays_truncated": truncated, "units_failed": len(errors)}
    return Finding(status, summary, details, data)


def _span(window: FeedWindow, items: dict[str, list[tuple[dt.date, dt.date]]]) -> Finding:
    pairs = [pair for unit_pairs in items.values() for pair in unit_pairs]
    asked = {"start": window.start.isoformat(), "end": window.end.isoformat()}
    summary = f"GetUnitNonAvailability asked {window.start} .. {window.end}"
    if not pairs:
        return Finding("info", f"{summary}; no item came back ({len(items)} units)",
                       data={"asked": asked, "items": 0, "units": len(items)})
    earliest, latest = min(p[0] for p in pairs), max(p[1] for p in pairs)
    details = []
    if earliest < window.start or latest > window.end:
        details.append("items are whole stays: they may start before or end after the dates asked")
    return Finding("info", f"{summary}; items seen from {earliest} to {latest} ({len(pairs)} items, "
                           f"{len(items)} units)", details,
                   {"asked": asked, "items": len(pairs), "units": len(items),
                    "earliest_start": earliest.isoformat(), "latest_end": latest.isoformat()})


def _work_orders(source: HsapiSource) -> Finding:
    try:
        body = source._call("POST", "SearchWorkOrders", json={"pageSize": PAGE_SIZE, "pageNumber": 1})
    except HttpStatusError as exc:
        if exc.status == 403:
            return Finding("warning", "SearchWorkOrders refused (HTTP 403): not granted to this partner; "
                                      "work orders that block a unit are seen only through its calendar",
                           data={"readable": False, "http_status": 403})
        if exc.status == 404:
            return Finding("not_available", "SearchWorkOrders is not served here (HTTP 404)",
                           data={"readable": False, "http_status": 404})
        return Finding("error", str(exc), data={"readable": False, "http_status": exc.status})
    except SourceError as exc:
        if isinstance(exc, AuthError):
            raise
        finding = failed(exc, "SearchWorkOrders")
        finding.data = {"readable": False}
        return finding
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        return Finding("error", "SearchWorkOrders: the answer is not a page of work orders",
                       data={"readable": False})
    total = body.get("totalCount")
    total = total if isinstance(total, int) and not isinstance(total, bool) else len(results)
    blocking = sum(1 for r in results
                   if isinstance(r, dict) and r.get("workOrderRemovesUnitFromAvailability") is True)
    return Finding("ok", f"readable: {total} work orders ({blocking} of the {len(results)} read take a unit "
                         "out of availability)",
                   data={"readable": True, "count": total, "read": len(results), "blocking": blocking})

