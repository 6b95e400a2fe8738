"""The double-booking watch against the real CLI: channel exports served by the sandbox
(sandbox/channels.py), compared with what Escapia (the sandbox) says."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import account_yaml, write_config

from escapia_ical.state import read_state, write_state

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)
UNIT = "1020-105"  # no reservations
SECRET = "s3cr3t-export-token"


def _configure(deployment, every: int = 15, vrbo_zone: str | None = None) -> None:
    zone = f", time_zone: {vrbo_zone}" if vrbo_zone else ""
    imports = f"""\
    imports:
      every_minutes: {every}
      units:
        "{UNIT}":
          - {{channel: airbnb, url: "${{SANDBOX_URL}}/_channels/airbnb-105.ics?s=${{EXPORT_SECRET}}"}}
          - {{channel: vrbo, url: "${{SANDBOX_URL}}/_channels/vrbo-105.ics"{zone}}}
"""
    write_config(deployment.config, account_yaml(extra=imports))


def _export(deployment, name: str, events: list[dict], shape: str | None = None, **more) -> None:
    deployment.sandbox.channels.put(name, {"shape": shape or name.split("-")[0], "events": events, **more})


def _stay(first: int, checkout: int, **more) -> dict:
    return {"start": (TODAY + first * DAY).isoformat(), "end": (TODAY + checkout * DAY).isoformat(), **more}


def _sync(deployment, *args):
    return deployment.run("sync", *args, EXPORT_SECRET=SECRET)


def _conflicts(deployment) -> dict:
    return (read_state(deployment.state / "accounts" / "sandbox" / "imports.json") or {}).get("conflicts", {})


def test_an_unsynced_booking_is_reported_once_kept_in_status_and_closes_by_itself(deployment):
    _configure(deployment)
    _export(deployment, "airbnb-105", [_stay(10, 13)])
    _export(deployment, "vrbo-105", [])
    first = _sync(deployment)
    assert first.returncode == 1, first.stderr
    lines = [line for line in first.stderr.splitlines() if "airbnb" in line]
    assert len(lines) == 1 and f"sandbox/{UNIT}: airbnb booking" in lines[0] and "free" in lines[0], first.stderr
    assert "3 of its nights" in lines[0]
    [(key, conflict)] = _conflicts(deployment).items()
    assert (conflict["kind"], conflict["nights"]) == (
        "unsynced", f"{TODAY + 10 * DAY}/{TODAY + 13 * DAY}")

    again = _sync(deployment)  # still open: not reported again, the run is fine
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    assert list(_conflicts(deployment)) == [key]
    status = deployment.run("status")
    assert status.returncode != 0 and "airbnb" in status.stdout + status.stderr, status.stdout

    # The manager enters the booking in Escapia: same dates, so the same booking. Closed.
    deployment.sandbox.add_reservation(UNIT, TODAY + 10 * DAY, TODAY + 13 * DAY)
    closed = _sync(deployment, "-v")
    assert closed.returncode == 0, closed.stderr
    assert "resolved" in closed.stderr and _conflicts(deployment) == {}
    assert deployment.run("status").returncode == 0


def test_our_own_feed_echoed_back_raises_nothing(deployment):
    deployment.sandbox.add_reservation(UNIT, TODAY + 5 * DAY, TODAY + 8 * DAY)
    deployment.sandbox.add_reservation(UNIT, TODAY + 8 * DAY, TODAY + 9 * DAY)  # back to back
    _configure(deployment)
    # Airbnb re-exports what it imported from us as "Not available", under its own UIDs, the
    # back-to-back stays as one; Vrbo keeps our UIDs.
    _export(deployment, "airbnb-105", [_stay(5, 9, blocked=True)])
    _export(deployment, "vrbo-105", [_stay(5, 8, uid="abc@calendars.example.com", blocked=True),
                                     _stay(8, 9, uid="def@calendars.example.com", blocked=True)])
    result = _sync(deployment)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert _conflicts(deployment) == {}

    # Escapia releases a stay; the channels still show it until they poll us again: an echo.
    deployment.sandbox.cancel_reservation(deployment.sandbox.reservations(UNIT)[-1]["id"])
    _age_fetches(deployment.state / "accounts" / "sandbox" / "imports.json")
    result = _sync(deployment)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert _conflicts(deployment) == {}


def test_a_booking_over_another_stay_is_a_double_booking(deployment):
    deployment.sandbox.add_reservation(UNIT, TODAY + 20 * DAY, TODAY + 24 * DAY)
    _configure(deployment)
    _export(deployment, "airbnb-105", [])
    _export(deployment, "vrbo-105", [_stay(22, 26)])  # two nights over the stay, two free
    result = _sync(deployment)
    assert result.returncode == 1
    kinds = {c["kind"]: c["nights"] for c in _conflicts(deployment).values()}
    assert kinds == {"double_booking": f"{TODAY + 22 * DAY}/{TODAY + 24 * DAY}",
                     "unsynced": f"{TODAY + 24 * DAY}/{TODAY + 26 * DAY}"}
    assert "double booking" in result.stderr


def test_timed_and_recurring_events_and_cancellations(deployment):
    _configure(deployment, vrbo_zone="Pacific/Kiritimati")  # UTC+14
    _export(deployment, "airbnb-105", [_stay(30, 32, cancelled=True)])
    # 15:00 UTC on day 40 to 11:00 UTC on day 42 is 05:00 on day 41 to 01:00 on day 43 there.
    _export(deployment, "vrbo-105", [_stay(40, 42, datetime=True, tz="UTC"),
                                     _stay(50, 51, rrule="FREQ=WEEKLY;COUNT=2")])
    assert _sync(deployment).returncode == 1
    nights = sorted(c["nights"] for c in _conflicts(deployment).values())
    assert nights == sorted([f"{TODAY + 41 * DAY}/{TODAY + 43 * DAY}", f"{TODAY + 50 * DAY}/{TODAY + 51 * DAY}",
                             f"{TODAY + 57 * DAY}/{TODAY + 58 * DAY}"])  # the cancelled one books nothing


def test_a_failing_or_garbled_export_changes_nothing(deployment):
    _configure(deployment)
    _export(deployment, "airbnb-105", [_stay(10, 13)])
    _export(deployment, "vrbo-105", [])
    assert _sync(deployment).returncode == 1
    before = _conflicts(deployment)
    imports = deployment.state / "accounts" / "sandbox" / "imports.json"
    for broken in ({"status": 500}, {"body": "<html>maintenance</html>"}, {"status": 404}):
        _export(deployment, "airbnb-105", [_stay(10, 13)], **broken)
        _age_fetches(imports)
        result = _sync(deployment)
        assert result.returncode == 0, result.stderr  # a warning, not yet an error
        assert "airbnb export (127.0.0.1)" in result.stderr and "last events are kept" in result.stderr
        assert _conflicts(deployment) == before
        assert SECRET not in result.stderr
    # An export that empties: the booking is gone from it, so is the conflict (nothing else changes).
    _export(deployment, "airbnb-105", [])
    _age_fetches(imports)
    assert _sync(deployment).returncode == 0 and _conflicts(deployment) == {}


def test_a_steady_tick_with_imports_makes_no_extra_escapia_request_and_asks_conditionally(deployment):
    _configure(deployment)
    _export(deployment, "airbnb-105", [])
    _export(deployment, "vrbo-105", [])
    assert _sync(deployment).returncode == 0
    sandbox = deployment.sandbox
    sandbox.reset_request_log()
    assert _sync(deployment).returncode == 0
    assert sandbox.request_count() == 2  # GetReservationChanges and SearchWorkOrders, as without imports
    assert sandbox.channels.summary()["channels"]["airbnb-105"]["requests"] == 1  # not due again
    _age_fetches(deployment.state / "accounts" / "sandbox" / "imports.json")
    sandbox.reset_request_log()
    assert _sync(deployment).returncode == 0
    seen = sandbox.channels.summary()["channels"]
    assert seen["airbnb-105"]["notModified"] == 1 and seen["vrbo-105"]["notModified"] == 1
    assert all(agent.startswith("Mozilla/5.0 (compatible; escapia-ical/")
               for channel in seen.values() for agent in channel["agents"])
    assert sandbox.request_count() == 2


def test_nothing_of_a_guest_nor_the_export_secret_is_kept_or_shown(deployment):
    _configure(deployment)
    _export(deployment, "airbnb-105", [_stay(10, 13)])
    _export(deployment, "vrbo-105", [_stay(20, 22)])
    result = _sync(deployment, "-v")
    status = deployment.run("status")
    kept = b"".join(path.read_bytes() for path in deployment.state.rglob("*") if path.is_file())
    with sqlite3.connect(deployment.state / "state.db") as db:
        rows = json.dumps(db.execute("SELECT * FROM documents").fetchall())
    for secret in ("Jane Doe", "HMSANDBOX1", "Phone Number", SECRET, "airbnb.com/hosting"):
        assert secret not in result.stderr + status.stdout + status.stderr + rows
        assert secret.encode() not in kept


def _age_fetches(path) -> None:
    """Make every export due again: as if it was last read an hour ago."""
    data = read_state(path)
    for record in data["feeds"].values():
        fetched = dt.datetime.fromisoformat(record["fetched"]) - dt.timedelta(hours=1)
        record["fetched"] = fetched.isoformat(timespec="seconds")
    write_state(path, data)


def test_conflicts_reach_metrics_and_the_failure_pings_body(deployment):
    bodies: list[tuple[str, str]] = []

    class Pings(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            bodies.append((self.path, self.rfile.read(length).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _configure(deployment)
        text = deployment.config.read_text()
        deployment.config.write_text(f"metrics_file: metrics.prom\nhealthcheck_url: "
                                     f"http://127.0.0.1:{server.server_address[1]}/ping/uuid\n{text}")
        _export(deployment, "airbnb-105", [_stay(10, 13)])
        _export(deployment, "vrbo-105", [_stay(20, 22)])
        assert _sync(deployment).returncode == 1
    finally:
        server.shutdown()
    metrics = (deployment.root / "metrics.prom").read_text()
    for channel in ("airbnb", "vrbo"):
        assert (f'escapia_ical_conflicts{{account="sandbox",channel="{channel}",kind="unsynced",unit="{UNIT}"}} 1.0'
                in metrics), metrics
    [(path, body)] = [(p, b) for p, b in bodies if not p.endswith("/start")]
    assert path.endswith("/1")
    assert body.count("NEW conflict sandbox/1020-105: ") == 2 and "airbnb booking" in body, body
    assert SECRET not in body and "Jane Doe" not in body
    # The status page marks the nights on the unit's strip, and lists the conflicts.
    report = deployment.run("report", "--html", str(deployment.root / "status.html"))
    assert report.returncode in (0, 2), report.stderr
    page = (deployment.root / "status.html").read_text()
    marked = {(TODAY + d * DAY).isoformat() for d in (10, 11, 12, 20, 21)}
    assert {n for n in marked if f'data-night="{n}" data-kind="conflict"' in page} == marked
    assert page.count('data-kind="conflict"') == 5 and "airbnb booking" in page
