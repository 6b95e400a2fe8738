"""What every probe shares: how a failed request becomes a finding, and the sample size."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from escapia_ical.diagnose.budget import BudgetSpent
from escapia_ical.diagnose.report import Finding
from escapia_ical.errors import AuthError, SourceError

SAMPLE_UNITS = 5  # units whose calendars are compared, per API
T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | SourceError:
    """Return what ``call`` returns, or the SourceError it raised (a probe that failed is a
    finding, not the end of the diagnosis). An AuthError is raised: nothing can work then."""
    try:
        return call()
    except AuthError:
        raise
    except SourceError as exc:
        return exc


def failed(exc: SourceError, doing: str) -> Finding:
    """Return the finding for a probe that could not run: skipped (the request budget was
    spent) or an error, saying what was being done."""
    if isinstance(exc, BudgetSpent):
        return Finding("skipped", f"{doing}: {exc}")
    return Finding("error", f"{doing}: {exc}")
