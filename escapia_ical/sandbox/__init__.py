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
