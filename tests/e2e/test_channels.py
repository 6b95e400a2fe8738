"""Which channel fetched which feed: the real CLI's `sync`, `channels` and `status` reading a
log written in the format the shipped nginx snippet declares."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from escapia_ical.state import read_state

SNIPPET = Path(__file__).resolve().parents[2] / "config" / "nginx.conf.example"


def shipped_line(when: dt.datetime, path: str, agent: str, status: int = 200, method: str = "GET") -> str:
    """Return one access log line as nginx writes it with the snippet's ``log_format``."""
    declared = re.search(r"(?m)^log_format escapia_ical '([^']*)';", SNIPPET.read_text(encoding="utf-8"))
    assert declared, "the snippet must declare log_format escapia_ical"
    values = {"time_iso8601": when.isoformat(timespec="seconds"), "request_method": method, "uri": path,
              "status": str(status), "body_bytes_sent": "731", "http_user_agent": agent}
    line = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], declared.group(1).replace("\\t", "\t"))
    return line + "\n"


def configure(deployment, log: Path, metrics: Path | None = None) -> None:
    extra = f"channels:\n  access_log: {log}\n  silence_hours: 24\n"
    if metrics:
        extra += f"metrics_file: {metrics}\n"
    deployment.config.write_text(deployment.config.read_text(encoding="utf-8") + extra, encoding="utf-8")


def test_sync_then_channels_and_status_name_a_silent_channel(deployment):
    log, metrics = deployment.root / "access.log", deployment.root / "metrics.prom"
    configure(deployment, log, metrics)
    first = deployment.run("sync")
    assert first.returncode == 0 and "access log" in first.stderr  # no log yet: a warning, not a failure
    units = deployment.sandbox.unit_ids()[:2]
    paths = [f"/sandbox/{deployment.feed(u).name}" for u in units]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log.write_text(shipped_line(now - dt.timedelta(hours=25), paths[0], "Airbnb Calendar Sync")
                   + shipped_line(now - dt.timedelta(minutes=3), paths[0], "Google-Calendar-Importer", 304)
                   + shipped_line(now - dt.timedelta(minutes=2), paths[1], "Mozilla/5.0 Firefox/126.0")
                   + shipped_line(now, "/sandbox/", "Airbnb Calendar Sync", 404)
                   + "this is not a log line\n", encoding="utf-8")

    synced = deployment.run("sync")
    assert synced.returncode == 0, synced.stderr
    assert 'escapia_ical_channel_last_fetch_timestamp_seconds{account="sandbox",channel="airbnb",unit="' \
        f'{units[0]}"}}' in metrics.read_text()

    shown = deployment.run("channels", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    rows = {(r["unit"], r["channel"]): r for r in report["feeds"]}
    assert rows[(units[0], "airbnb")]["count"] == 1 and rows[(units[0], "airbnb")]["status"] == 200
    assert rows[(units[0], "google-calendar")]["status"] == 304
    assert rows[(units[1], "other")]["count"] == 1
    assert all(r["channel"] is None for u, r in rows.items() if u[0] not in units[:2])  # nobody fetched those
    assert report["read"]["error"] is None
    table = deployment.run("channels")
    assert f"sandbox/{units[0]}" in table.stdout and "google-calendar" in table.stdout
    assert "no fetch seen" in table.stdout

    status = deployment.run("status")
    assert status.returncode == 2
    silent = [line for line in status.stdout.splitlines() if "has not fetched" in line]
    assert len(silent) == 1, status.stdout
    assert silent[0].startswith(f"sandbox: {units[0]}: airbnb has not fetched this feed for 25h")
    assert json.loads(deployment.run("status", "--json").stdout)["ok"] is False

    with open(log, "a", encoding="utf-8") as stream:  # Airbnb is back
        stream.write(shipped_line(dt.datetime.now(dt.UTC), paths[0], "Airbnb Calendar Sync"))
    assert deployment.run("channels").returncode == 0
    fine = deployment.run("status")
    assert fine.returncode == 0, fine.stdout
    recorded = read_state(deployment.state / "channels.json")
    assert recorded and units[0] in json.dumps(recorded)
    assert ".ics" not in json.dumps(recorded)  # unit ids, not feed names
    page = deployment.root / "status.html"
    assert deployment.run("report", "--html", str(page)).returncode == 0
    assert "airbnb: " in page.read_text() and "google-calendar: " in page.read_text()  # the status page shows them


def test_channels_without_the_config_block_is_a_usage_error(deployment):
    result = deployment.run("channels")
    assert result.returncode == 2 and "channels: not configured" in result.stderr


def test_channels_says_when_the_log_cannot_be_read(deployment):
    configure(deployment, deployment.root / "missing.log")
    assert deployment.run("sync").returncode == 0
    result = deployment.run("channels")
    assert result.returncode == 1 and "missing.log does not exist" in result.stderr
    status = deployment.run("status")
    assert status.returncode == 2 and "channel fetch log: access log" in status.stdout
