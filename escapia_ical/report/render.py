"""Render the status page with Jinja2: autoescaping on (unit ids and errors come from
Escapia), undefined names an error (a typo must not render as an empty cell)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

TEMPLATE = "report.html.j2"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("escapia_ical.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=False, keep_trailing_newline=True)


def render_page(context: dict[str, Any]) -> str:
    """Return the page's HTML for ``context`` (see page.gather_page). Raise jinja2's
    errors on a broken template (a bug)."""
    return _environment().get_template(TEMPLATE).render(context)
