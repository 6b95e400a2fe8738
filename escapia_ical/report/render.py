"""Render the status page with Jinja2: autoescaping on (unit ids and errors come from
Escapia), undefined names an error (a typo must not render as an empty cell)."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

TEMPLATE = "report.html.j2"


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here: a sync that writes no page does not load it (40 ms a tick)

    environment = jinja2.Environment(loader=jinja2.PackageLoader("escapia_ical.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True)
    environment.filters["minute"] = short_time
    return environment


def short_time(value: str | None) -> str:
    """Return a stored ISO time as ``YYYY-MM-DD HH:MM`` UTC (what a table cell has room
    for), "" for None, and anything unreadable as it is."""
    if not value:
        return ""
    try:
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value)


def render_page(context: dict[str, Any]) -> str:
    """Return the page's HTML for ``context`` (see page.gather_page). Raise jinja2's
    errors on a broken template (a bug)."""
    return _environment().get_template(TEMPLATE).render(context)
