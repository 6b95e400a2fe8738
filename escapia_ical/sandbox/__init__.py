"""A local fake of Escapia HSAPI (REST) and EscapiaNET (SOAP) with deterministic, seeded data
(see :mod:`.seed`); both APIs serve the same units and reservations.

Used by the demo, the end-to-end tests (the CLI talks to it over loopback while the test
inspects its ground truth in-process) and benchmarks. Stdlib only, plus defusedxml to parse
incoming SOAP requests.
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
