"""A local fake of Escapia HSAPI with deterministic, seeded data (see :mod:`.seed`).

Used by the demo, the end-to-end tests (the CLI talks to it over loopback while the test
inspects its ground truth in-process) and benchmarks. Stdlib only.
"""

from escapia_ical.sandbox.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PMCID,
    Sandbox,
)

__all__ = ["Sandbox", "SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "SANDBOX_PMCID"]
