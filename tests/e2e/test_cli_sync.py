"""The cron job end to end: the real CLI, the sandbox over loopback, files on disk."""

from __future__ import annotations

import datetime as dt
import fcntl
import re
import shlex
import stat
import subprocess
import time
from pathlib import Path

import vobject
from conftest import CLI, Deployment, account_yaml, write_config
from feeds import ALLOWED_CALENDAR, ALLOWED_EVENT, property_names, read_nights

from escapia_ical.status import load_status

REPO = Path(__file__).resolve().parents[2]


def feeds_on_disk(deployment: Deployment, account: str = "sandbox") -> set[str]:
    return {p.name for p in (deployment.output / account).iterdir()}


def test_sync_publishes_one_feed_per_unit_equal_to_the_truth(deployment):
    result = deployment.run("sync")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # silent for cron
    unit_ids = deployment.sandbox.unit_ids()
    assert len(unit_ids) >= 5
    assert feeds_on_disk(deployment) == {deployment.feed(u).name for u in unit_ids}
    busy = 0
    for unit_id in unit_ids:
        path = deployment.feed(unit_id)
        truth = deployment.truth(unit_id)
        assert read_nights(path) == truth, unit_id
        busy += bool(truth)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert busy >= 3, "the seeded data has bookings"


def test_feeds_hold_no_guest_data(deployment):
    assert deployment.run("sync").returncode == 0
    for unit_id in deployment.sandbox.unit_ids():
        path = deployment.feed(unit_id)
        calendar_props, event_props = property_names(path)
        assert calendar_props <= ALLOWED_CALENDAR and event_props <= ALLOWED_EVENT
        # vobject unescapes TEXT; icalendar >= 7.2 returns X-WR-CALNAME still escaped.
        calendar = vobject.readOne(path.read_text(encoding="utf-8"))
        assert {e.summary.value for e in calendar.contents.get("vevent", [])} <= {"Reserved"}
        assert calendar.x_wr_calname.value == deployment.sandbox.unit(unit_id)["name"]
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text.replace("@calendars.example.com", "")), "an email"
        assert "guest" not in text.lower() and "$" not in text


def test_second_run_rewrites_nothing(deployment):
    assert deployment.run("sync").returncode == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
              for p in (deployment.output / "sandbox").iterdir()}
    time.sleep(1.1)  # so that a rewrite would get a different DTSTAMP second and mtime
    assert deployment.run("sync").returncode == 0
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
             for p in (deployment.output / "sandbox").iterdir()}
    assert after == before


def test_token_is_reused_across_runs(deployment):
    deployment.run("sync")
    deployment.sandbox.reset_request_log()
    assert deployment.run("sync").returncode == 0
    assert deployment.sandbox.request_count("auth/token") == 0
    token_file = deployment.state / "accounts" / "sandbox" / "token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "sandbox-secret" not in token_file.read_text()


def test_expired_token_mid_life_is_refreshed_once(deployment):
    deployment.run("sync")
    deployment.sandbox.expire_tokens()
    deployment.sandbox.reset_request_log()
    assert deployment.run("sync").returncode == 0
    assert deployment.sandbox.request_count("auth/token") == 1


def test_added_and_cancelled_bookings_show_after_the_next_run(deployment):
    sandbox = deployment.sandbox
    empty = next(u for u in sandbox.unit_ids() if not deployment.truth(u))
    assert deployment.run("sync").returncode == 0
    start = dt.date.today() + dt.timedelta(days=20)
    booking = sandbox.add_reservation(empty, start, start + dt.timedelta(days=3))
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(empty)) == {start + dt.timedelta(days=i) for i in range(3)}
    sandbox.cancel_reservation(booking)
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(empty)) == set()


def test_failure_of_one_unit_keeps_its_previous_feed_and_exits_1(deployment):
    sandbox = deployment.sandbox
    assert deployment.run("sync").returncode == 0
    victim, other = [u for u in sandbox.unit_ids() if deployment.truth(u)][:2]
    kept = deployment.feed(victim).read_bytes()
    sandbox.fail_unit(victim, status=500)
    start = dt.date.today() + dt.timedelta(days=400)
    sandbox.add_reservation(victim, start, start + dt.timedelta(days=2))
    sandbox.add_reservation(other, start, start + dt.timedelta(days=2))
    result = deployment.run("sync")
    assert result.returncode == 1
    assert deployment.feed(victim).read_bytes() == kept
    assert read_nights(deployment.feed(other)) == deployment.truth(other)  # the rest published
    lines = result.stderr.splitlines()
    assert any(victim in line and "HTTP 500" in line for line in lines), result.stderr
    assert lines[-1].startswith("escapia-ical: error: sync incomplete: 1 of ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    sandbox.clear_faults()
    assert deployment.run("sync").returncode == 0
    assert read_nights(deployment.feed(victim)) == deployment.truth(victim)


def test_status_records_each_unit(deployment):
    deployment.sandbox.fail_unit(deployment.sandbox.unit_ids()[0], status=503)
    deployment.run("sync")
    status = load_status(deployment.state)
    account = status["accounts"]["sandbox"]
    first, *rest = deployment.sandbox.unit_ids()
    assert "HTTP 503" in account["units"][first]["last_error"]
    assert all(account["units"][u]["last_error"] is None for u in rest)
    assert account["requests"]["GetUnitNonAvailability"] >= len(rest)
    assert status["run"]["exit_code"] == 1


def hold_lock(deployment, account: str, since: dt.datetime):
    """Hold an account's sync lock as a run started at ``since`` would."""
    lock = deployment.state / "accounts" / account / "sync.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = open(lock, "w")  # noqa: SIM115 - held across the caller's block
    fcntl.flock(held, fcntl.LOCK_EX)
    held.write(f"4242 {since.isoformat()}\n")
    held.flush()
    return held


def test_concurrent_second_sync_exits_75_silently(deployment):
    with hold_lock(deployment, "sandbox", dt.datetime.now(dt.UTC)):
        quiet = deployment.run("sync")
        verbose = deployment.run("sync", "-v")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (75, "", "")
    assert verbose.returncode == 75 and "account 'sandbox' is being synced by pid 4242" in verbose.stderr
    assert not (deployment.output / "sandbox").exists()


def test_a_stuck_account_is_reported_once_and_does_not_freeze_the_others(deployment):
    write_config(deployment.config, account_yaml(name="stuck") + account_yaml(name="other"))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with hold_lock(deployment, "stuck", since):
        first, second = deployment.run("sync"), deployment.run("sync")
        status = deployment.run("status", "--json")
    assert first.returncode == 1 and first.stderr.count("\n") == 1
    assert first.stderr.startswith("escapia-ical: error: stuck: not synced: pid 4242 since ")
    assert "holds its lock, longer than a run may last" in first.stderr
    assert (second.returncode, second.stderr) == (1, ""), "said once; exit 1 while not synced"
    assert sorted(p.name for p in (deployment.output / "other").iterdir()) == sorted(
        deployment.feed(u, "other").name for u in deployment.sandbox.unit_ids())
    assert not (deployment.output / "stuck").exists()
    recorded = load_status(deployment.state)["accounts"]["stuck"]
    assert recorded["lock_stuck"] == {"pid": 4242, "since": since.replace(microsecond=0).isoformat()}
    assert status.returncode == 2


def test_two_real_syncs_overlapping(deployment):
    deployment.sandbox.latency = 0.2
    first = subprocess.Popen([CLI, "sync", "--config", str(deployment.config)],
                             env=deployment.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while deployment.sandbox.request_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = deployment.run("sync")
        assert (second.returncode, second.stderr) == (75, "")
    finally:
        deployment.sandbox.latency = 0.0
        assert first.wait(timeout=60) == 0


def test_auth_failure_of_one_account_does_not_stop_the_other(deployment):
    broken = account_yaml(name="broken").replace("${SANDBOX_SECRET}", "wrong-secret")
    write_config(deployment.config, account_yaml() + broken)
    result = deployment.run("sync")
    assert result.returncode == 1
    assert "broken: auth/token: credentials refused (HTTP 401)" in result.stderr
    assert "wrong-secret" not in result.stderr
    assert len(feeds_on_disk(deployment)) == len(deployment.sandbox.unit_ids())
    assert not (deployment.output / "broken").exists()


def test_configured_unit_not_distributed_is_an_error_for_that_unit_only(deployment):
    first = deployment.sandbox.unit_ids()[0]
    write_config(deployment.config, account_yaml(units=f'["{first}", "no-such-unit"]'))
    result = deployment.run("sync")
    assert result.returncode == 1
    assert "sandbox/no-such-unit: configured unit is not distributed by Escapia" in result.stderr
    assert feeds_on_disk(deployment) == {deployment.feed(first).name}


def test_inclusive_end_dates_are_read_as_configured(tmp_path):
    from escapia_ical.sandbox import Sandbox

    with Sandbox(end_date="inclusive") as sandbox:
        config = tmp_path / "accounts.yaml"
        write_config(config, account_yaml(extra="    end_date: inclusive\n"))
        deployment = Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state")
        assert deployment.run("sync").returncode == 0
        for unit_id in sandbox.unit_ids():
            assert read_nights(deployment.feed(unit_id)) == deployment.truth(unit_id)


def test_dry_run_writes_nothing_and_says_what_would_change(deployment):
    result = deployment.run("sync", "--dry-run")
    assert result.returncode == 0
    assert not (deployment.output / "sandbox").exists()
    assert result.stdout.count("would write ") == len(deployment.sandbox.unit_ids())
    assert not (deployment.state / "config.checked").exists()  # (only a sync that writes keeps it)


def test_unit_and_account_filters(deployment):
    first = deployment.sandbox.unit_ids()[0]
    assert deployment.run("sync", "--unit", first).returncode == 0
    assert feeds_on_disk(deployment) == {deployment.feed(first).name}
    missing = deployment.run("sync", "--unit", "nope")
    assert missing.returncode == 1 and "unit 'nope' is not distributed" in missing.stderr
    unknown = deployment.run("sync", "--account", "nope")
    assert unknown.returncode == 2 and "no account named 'nope'" in unknown.stderr


def test_bad_config_exits_2_with_file_and_line(deployment):
    deployment.config.write_text(deployment.config.read_text().replace("past_days", "past_dayz"))
    result = deployment.run("sync")
    assert result.returncode == 2
    assert re.search(r"accounts\.yaml:\d+: feeds\.past_dayz: unknown key", result.stderr)
    assert "Traceback" not in result.stderr
    deployment.config.write_text(deployment.config.read_text().replace("past_dayz", "past_days"))
    unset = deployment.run("sync", SANDBOX_SECRET=None)
    assert unset.returncode == 2
    assert re.search(r"accounts\.yaml:\d+: accounts\[0\]\.client_secret: environment variable "
                     r"SANDBOX_SECRET is not set$", unset.stderr.strip())


def test_check_config_list_units_and_show(deployment):
    check = deployment.run("check-config")
    assert check.returncode == 0 and "OK, 1 account(s)" in check.stdout
    listing = deployment.run("list-units", "--account", "sandbox")
    assert listing.returncode == 0
    for unit_id in deployment.sandbox.unit_ids():
        assert unit_id in listing.stdout
    unit_id = next(u for u in deployment.sandbox.unit_ids() if deployment.truth(u))
    shown = deployment.run("show", "--account", "sandbox", "--unit", unit_id)
    assert shown.returncode == 0
    path = deployment.root / "shown.ics"
    path.write_bytes(shown.stdout.encode())
    assert read_nights(path) == deployment.truth(unit_id)
    assert not (deployment.output / "sandbox").exists(), "show writes no feed"


def test_temp_files_left_by_a_crash_are_removed(deployment):
    folder = deployment.output / "sandbox"
    folder.mkdir(parents=True)
    stale = folder / ".1020-101.ics.4242.deadbeef.tmp"
    stale.write_text("BEGIN:VCALENDAR\r\npartial")
    assert deployment.run("sync").returncode == 0
    assert not stale.exists()


def test_crontab_example_line_runs_against_the_sandbox(deployment):
    line = next(row for row in (REPO / "crontab.example").read_text().splitlines()
                if row.strip() and not row.startswith("#") and "=" not in row.split()[0])
    schedule, command = line.split()[:5], " ".join(line.split()[5:])
    assert schedule == ["*/5", "*", "*", "*", "*"]
    log_file = deployment.root / "sync.log"
    command = (command.replace("/opt/escapia-ical/.venv/bin/escapia-ical", CLI)
               .replace("/etc/escapia-ical/accounts.yaml", str(deployment.config))
               .replace("/var/log/escapia-ical/sync.log", str(log_file)))
    # Each system path of the line replaced (not "no /opt/ left": the clone may live in /opt
    # or /var, as the README's own install does).
    system = [word for word in line.split() if word.startswith(("/opt/", "/etc/", "/var/"))]
    assert len(system) == 3 and not any(path in command for path in system), command
    env = {"PATH": "/usr/bin:/bin", "HOME": str(deployment.root), "SHELL": "/bin/sh",
           **{k: v for k, v in deployment.env().items() if k.startswith("SANDBOX_")}}
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                            env=env, cwd="/", timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(feeds_on_disk(deployment)) == len(deployment.sandbox.unit_ids())
    assert "sync finished" in log_file.read_text()
    assert shlex.split(command)[0] == CLI


def test_locked_out_run_is_silent_even_with_a_config_warning(deployment):
    deployment.config.write_text(deployment.config.read_text().replace("${SANDBOX_SECRET}", "sandbox-secret"))
    deployment.config.chmod(0o644)  # holds a literal secret: warns, but only once it runs
    with hold_lock(deployment, "sandbox", dt.datetime.now(dt.UTC)):
        locked = deployment.run("sync")
    assert (locked.returncode, locked.stdout, locked.stderr) == (75, "", "")
    running = deployment.run("sync")
    assert running.returncode == 0
    assert running.stderr.count("readable by group/others") == 1


def test_unopenable_log_file_warns_but_publishes(deployment):
    result = deployment.run("sync", "--log-file", str(deployment.root / "missing" / "sync.log"))
    assert result.returncode == 0
    assert result.stderr.startswith("escapia-ical: warning: cannot open log file")
    assert len(feeds_on_disk(deployment)) == len(deployment.sandbox.unit_ids())


def test_accept_with_nothing_held(deployment):
    assert deployment.run("sync").returncode == 0
    whole = deployment.run("accept", "--account", "sandbox", "--by", "ops")
    assert whole.returncode == 0 and "sandbox: no held loss(es) accepted by ops" in whole.stdout
    one = deployment.run("accept", "--account", "sandbox", "--unit", "1020-101")
    assert one.returncode == 1
    assert one.stderr == "escapia-ical: sandbox/1020-101: no loss is held for this unit\n"
    assert deployment.run("accept", "--account", "nope").returncode == 2
    recorded = load_status(deployment.state)["accounts"]["sandbox"]["accepted"]
    assert [(a["by"], a["units"], a["whole_account"]) for a in recorded] == [("ops", [], True)]


def test_accept_says_why_it_cannot_run_while_the_account_is_synced(deployment):
    with hold_lock(deployment, "sandbox", dt.datetime.now(dt.UTC)):
        result = deployment.run("accept", "--account", "sandbox", "--wait", "0.5")
    assert result.returncode == 75
    assert "account 'sandbox' is being synced by pid 4242" in result.stderr
