"""`escapia-ical report --html` and `report_html`: the real CLI after syncs against the
sandbox, its page read back by parsing, and (where chromium is installed) looked at."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import account_yaml, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the page parser, shared
from report_html import Page  # noqa: E402

SECRET = "feed-token-secret-report-0123456789"
OFFLINE = {"SANDBOX_SECRET": None, "SANDBOX_ID": None, "SANDBOX_URL": "http://127.0.0.1:9"}


def synced(deployment, page: Path) -> None:
    """Two syncs with secret feed names and report_html on, one unit failing in the second."""
    write_config(deployment.config, account_yaml(extra=f"    feed_tokens: true\n    feed_token_secret: {SECRET}\n"))
    deployment.config.write_text(f"report_html: {page}\n" + deployment.config.read_text())
    assert deployment.run("sync").returncode == 0
    deployment.sandbox.fail_unit("1020-105", status=500)
    assert deployment.run("sync", "--full").returncode == 1


def test_sync_writes_the_page_and_report_reads_state_only(deployment):
    after_sync = deployment.root / "pages" / "status.html"
    synced(deployment, after_sync)
    page = Page(after_sync.read_text())
    units = deployment.sandbox.unit_ids()
    assert sorted(unit for _, unit in page.units) == sorted(units)
    assert page.units[("sandbox", "1020-101")]["health"] == "fresh"
    assert page.units[("sandbox", "1020-105")]["health"] == "failed"  # fresh 1 run ago, failing now
    today = dt.date.today()
    for unit in units:
        nights = page.units[("sandbox", unit)]["nights"]
        assert [d for d, _ in nights] == [str(today + dt.timedelta(days=i)) for i in range(90)]
        blocked = {dt.date.fromisoformat(d) for d, kind in nights if kind != "free"}
        assert blocked == deployment.truth(unit) & {today + dt.timedelta(days=i) for i in range(90)}, unit
    assert re.search(r"2 runs, 1 not exit 0", page.all_text)
    # The command: no network, no secret in the environment; no feed name in the page.
    by_hand = deployment.root / "by-hand.html"
    made = deployment.run("report", "--html", str(by_hand), **OFFLINE)
    assert made.returncode == 0 and made.stdout == "" and made.stderr == "", made.stderr
    html = by_hand.read_text()
    names = [p.name for p in (deployment.output / "sandbox").iterdir()]
    assert names and not any(name in html or name[-36:-4] in html for name in names)
    assert SECRET not in html and ".ics" not in html
    with_urls = deployment.run("report", "--html", str(by_hand), "--with-urls", "--base-url",
                               "https://feeds.example.com", **OFFLINE)
    assert with_urls.returncode == 0
    assert all(f"https://feeds.example.com/sandbox/{name}" in by_hand.read_text() for name in names)


def test_refusals_are_one_line(deployment):
    write_config(deployment.config)
    assert deployment.run("sync").returncode == 0
    inside = deployment.output / "status.html"
    refused = deployment.run("report", "--html", str(inside))
    assert refused.returncode == 2 and not inside.exists()
    assert len(refused.stderr.splitlines()) == 1 and "inside output_dir" in refused.stderr
    assert deployment.run("report", "--html", str(inside), "--inside-output-dir").returncode == 0
    alone = deployment.run("report", "--html", str(deployment.root / "p.html"), "--with-urls")
    assert alone.returncode == 2 and "--base-url" in alone.stderr
    # report_html that cannot be written: the sync still succeeds, with one warning.
    (deployment.root / "blocker").write_text("")
    deployment.config.write_text(f"report_html: {deployment.root / 'blocker' / 's.html'}\n"
                                 + deployment.config.read_text())
    run = deployment.run("sync")
    assert run.returncode == 0 and "report_html: cannot write the status page" in run.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium: the status page screenshot is not taken "
                    "(Debian: apt-get install chromium; scripts/test installs it as root)")
def test_screenshot_of_the_page(deployment, tmp_path_factory):
    page = deployment.root / "status.html"
    synced(deployment, page)
    shot = tmp_path_factory.getbasetemp() / "status-page.png"  # stable: pytest-current/status-page.png
    profile = deployment.root / "chromium-profile"
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(deployment.root)})
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real picture, not a blank page
    print(f"\nstatus page screenshot: {shot}")
