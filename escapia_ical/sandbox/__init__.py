"""A local fake of Escapia HSAPI (REST) and EscapiaNET (SOAP) with deterministic, seeded data
(see :mod:`.seed`); both APIs serve the same units and reservations.

Used by the demo, the end-to-end tests (the CLI talks to it over loopback while the test
inspects its ground truth in-process) and benchmarks. Stdlib only, plus defusedxml to parse
incoming SOAP requests.

Invented here: where the published artefacts are silent, the sandbox's choice (clients must
not depend on more than the artefacts say).

HSAPI
  - Work orders (:mod:`.hsapi_work_orders`): ``endDateWhenUnitIsRemovedFromAvailability`` is
    the last night removed (inclusive); every status but Completed keeps blocking; they are
    NonAvailability items in the same form as a stay; SearchWorkOrders' ``startDateRange``
    filters on the removal's start date (inclusive; orders without one never match);
    dates are sent as ``YYYY-MM-DDT00:00:00``, a missing one as ``0001-01-01T00:00:00``;
    GetWorkOrder/SaveWorkOrder answer 404 for an unknown id; ``work_orders_granted = False``
    answers 403 to all three operations.
  - Odd NonAvailability items (fault ``odd_items``, :mod:`.odd_items`): that they occur
    follows from the contract; when and how they combine is invented.
  - Effective contract dates (``Sandbox.block_contract``): the FAQ names them as a cause of
    non-availability; their shape is invented. A block is one NonAvailability item in the
    same form as a stay, and ``U`` nights in EscapiaNET calendars (no ``O``: nobody arrives);
    it never shows in GetReservationChanges, the reservation searches or the work orders,
    and does not move a unit's ``LastUpdated``.
  - The kind of each cause (``Sandbox.blocked_nights_by_kind``): holdType None ->
    reservation, Owner/GuestOfOwner -> owner, Maintenance -> maintenance, the other holds ->
    hold, work orders -> maintenance, contract dates -> other: the sandbox's own table of
    what escapia-ical should label, not something Escapia publishes.

EscapiaNET
  - ``UpdatedAfter`` is compared inclusively (``LastUpdated >= UpdatedAfter``, whole seconds; a
    naive dateTime is UTC); a unit's ``LastUpdated`` is its last recorded reservation/hold
    change, else midnight UTC 30 days before the sandbox's today.
  - ``SummaryOnly="true"`` drops the segments and keeps ``LastUpdated``.
  - Holds are hidden unless asked; ``ShowHolds``/``ShowHold`` read "true" or "1" as yes.
    Blocking work orders (HSAPI) show in calendars whether holds are asked for or not.
  - A calendar covers at most ``calendar_max_days`` nights (764) from its start, in both
    operations; a batch without ``CalendarDateRange`` covers today onwards; each
    ``CalendarAvail`` may carry its own range (the first that selects a unit wins).
  - UnitSearch lists at most ``MaxResponses`` (or ``unit_list_cap``) units and then sets
    ``Units/@moredata="true"``; ``SendUnitSummary`` (default true) adds a ``UnitSummary`` child
    (names stay on ``Unit@UnitName`` either way); ``SendRateDetails`` and ``Criteria`` are ignored.
  - ``cached_batch``: every batch answer repeats the previous one (whatever was asked), with
    ``UnitCalendarAvails/@CachedData="true"``; a fresh answer says ``CachedData="false"``.
  - The nested batch answer's outer ``EVRN_UnitCalendarAvailBatchRS`` carries nothing but the
    inner one (no Version, no Success).
  - A unit with an injected unit fault is left out of a batch with calendars (one fault use);
    a summary (``SummaryOnly``) lists it.
"""

from escapia_ical.sandbox.escapianet import (
    SANDBOX_PMC_CODE,
    SANDBOX_SOAP_PASSWORD,
    SANDBOX_SOAP_USER,
    SOAP_FAULT_MODES,
)
from escapia_ical.sandbox.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PMCID,
    Sandbox,
)

__all__ = ["Sandbox", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "SANDBOX_PMCID", "SANDBOX_SOAP_USER",
           "SANDBOX_SOAP_PASSWORD", "SANDBOX_PMC_CODE", "SOAP_FAULT_MODES"]
