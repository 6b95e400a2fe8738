"""The static status page: ``escapia-ical report --html PATH``, and ``report_html`` in the
config to write it after every sync.

One self-contained HTML file (inline CSS, no JavaScript, nothing fetched), written
atomically, from state only (no network, no secret). It never goes into output_dir (the
folder nginx serves to the world) unless the operator says so, and holds no feed file
name (a secret when feed_tokens is on) unless asked for the URLs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from escapia_ical.config import Config
from escapia_ical.errors import ConfigError, PublishError
from escapia_ical.feeds.publish import open_folder, write_at
from escapia_ical.report.page import gather_page
from escapia_ical.report.render import render_page

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = dt.timedelta(minutes=15)  # status's default --max-age
PAGE_MODE = 0o644
PAGE_WITH_URLS_MODE = 0o600  # its URLs are secrets when feed_tokens is on


def write_report(config: Config, path: Path, *, max_age: dt.timedelta = DEFAULT_MAX_AGE,
                 base_url: str | None = None, inside_output_dir: bool = False,
                 now: dt.datetime | None = None) -> None:
    """Render the status page and write it to ``path`` atomically (its folder is created
    if missing). ``base_url`` adds each feed's URL (and writes the file 0600). Raise
    ConfigError if ``path`` is inside output_dir and ``inside_output_dir`` is off,
    PublishError if it cannot be written."""
    path = Path(os.path.abspath(path))
    output_dir = Path(os.path.abspath(config.output_dir))
    if not inside_output_dir and (path.is_relative_to(output_dir) or
                                  path.resolve().is_relative_to(output_dir.resolve())):
        raise ConfigError(f"{path} is inside output_dir {output_dir}, which is served to the world; "
                          "write the status page elsewhere (or pass --inside-output-dir)")
    now = now or dt.datetime.now(dt.UTC)
    context = gather_page(config, now, dt.date.today(), max_age, base_url=base_url)
    content = render_page(context).encode("utf-8")
    try:
        os.makedirs(path.parent, 0o755, exist_ok=True)
        folder = open_folder(path.parent, path.parent, 0o755)
        try:
            write_at(folder, path.name, content, PAGE_WITH_URLS_MODE if base_url else PAGE_MODE)
        finally:
            os.close(folder)
    except OSError as exc:
        raise PublishError(f"cannot write the status page {path}: {exc.strerror or exc}") from exc


def write_report_after_sync(config: Config, now: dt.datetime) -> None:
    """Write the page ``report_html`` names, if any; a failure is one warning, never the
    sync's failure (the feeds are what matters)."""
    if config.report_html is None:
        return
    try:
        write_report(config, config.report_html, now=now)
    except (ConfigError, PublishError) as exc:
        log.warning("report_html: %s (the feeds are not affected)", exc)
    except Exception as exc:  # noqa: BLE001 - a bug in the page must not fail the sync either
        log.warning("report_html: cannot render the status page: %s: %s (the feeds are not affected; "
                    "`escapia-ical report -v` shows the traceback)", exc.__class__.__name__, exc)
