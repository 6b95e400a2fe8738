"""What a diagnosis found, and its two renderings: a short text and a JSON document.

The JSON shape (``FORMAT`` 1, documented in the README under "What `diagnose` reports"):

    {"format": 1, "account": NAME, "api": "hsapi" | "escapianet",
     "configured": {the account's settings the findings judge, e.g. "end_date"},
     "window": {"start": DATE, "end": DATE},          # the feed window, end exclusive
     "requests": {"sent", "limit", "refused", "by_operation", "outcomes"},
     "findings": {KEY: {"status", "summary", ...details}},
     "rate_limit_headers": {NAME: {"answers", "first", "last"}},
     "timings_ms": {OPERATION: {"count", "min", "median", "max"}}}

``status`` is one of STATUSES. Finding keys: HSAPI ``units``, ``end_date``,
``calendar_span``, ``work_orders``; EscapiaNET ``units``, ``calendar_span``, ``letters``,
``holds``, ``unit_vs_batch``. Nothing in it comes from a guest or a reservation but dates
and counts; no credential or token is ever put in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from escapia_ical.config.positions import one_line

FORMAT = 1
STATUSES = ("ok", "warning", "info", "not_available", "skipped", "error")
LABELS = {"ok": "OK", "warning": "WARNING", "info": "INFO", "not_available": "N/A",
          "skipped": "SKIPPED", "error": "ERROR"}
TITLES = {"units": "units", "end_date": "end_date", "calendar_span": "calendar span",
          "work_orders": "work orders", "letters": "letters", "holds": "holds",
          "unit_vs_batch": "per unit vs batch"}


@dataclass
class Finding:
    """One thing the diagnosis looked at: a verdict (``status``), one line saying it, more
    lines for a person (``details``) and the figures behind it (``data``, for JSON)."""

    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown finding status {self.status!r}")


@dataclass
class Report:
    account: str
    api: str
    configured: dict[str, Any]
    window: tuple[str, str]
    findings: dict[str, Finding] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    rate_limit_headers: dict[str, dict] = field(default_factory=dict)
    timings_ms: dict[str, dict] = field(default_factory=dict)

    def as_json(self, mask: Callable[[str], str] = lambda text: text) -> str:
        """Return the report as a JSON document (see the module docstring), every string in
        it passed through ``mask`` first (JSON escaping would hide a secret from a mask
        applied to the document)."""
        return json.dumps(_masked({
            "format": FORMAT, "account": self.account, "api": self.api, "configured": self.configured,
            "window": {"start": self.window[0], "end": self.window[1]},
            "requests": self.requests,
            "findings": {key: {"status": f.status, "summary": f.summary, **f.data}
                         for key, f in self.findings.items()},
            "rate_limit_headers": self.rate_limit_headers,
            "timings_ms": self.timings_ms,
        }, mask), indent=1, ensure_ascii=False)

    def as_text(self) -> str:
        """Return the report for a person: a few lines per finding, each escaped to one line."""
        settings = ", ".join(f"{k}: {v}" for k, v in self.configured.items())
        lines = [f"account {self.account} ({'HSAPI' if self.api == 'hsapi' else 'EscapiaNET'}; {settings})",
                 f"feed window {self.window[0]} .. {self.window[1]} (end exclusive)"]
        width = max(len(t) for t in TITLES.values())
        for key, finding in self.findings.items():
            title = TITLES.get(key, key).ljust(width)
            lines.append(f"{title}  {LABELS[finding.status]:<7}  {finding.summary}")
            lines += [f"{'':{width}}           {detail}" for detail in finding.details]
        lines.append(f"{'rate limits'.ljust(width)}  {'INFO':<7}  {self._rate_line()}")
        lines.append(f"{'timings'.ljust(width)}  {'INFO':<7}  min/median/max ms per operation:")
        for operation, t in self.timings_ms.items():
            lines.append(f"{'':{width}}           {operation}: {t['count']}x "
                         f"{t['min']:g}/{t['median']:g}/{t['max']:g}")
        sent, limit = self.requests.get("sent", 0), self.requests.get("limit", 0)
        refused = self.requests.get("refused", 0)
        note = f"; {refused} more were not sent (budget spent)" if refused else ""
        lines.append(f"{'requests'.ljust(width)}  {'INFO':<7}  {sent} sent, at most {limit} allowed{note}")
        return "\n".join(one_line(line) for line in lines) + "\n"

    def _rate_line(self) -> str:
        if not self.rate_limit_headers:
            return "no X-RateLimit-* or Retry-After header came back"
        shown = []
        for name, seen in sorted(self.rate_limit_headers.items()):
            values = seen["first"] + (f" .. {seen['last']}" if seen["last"] != seen["first"] else "")
            shown.append(f"{name}: {values} ({seen['answers']} answers)")
        return "; ".join(shown)


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask(str(k)): _masked(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, mask) for v in value]
    return value
