"""What operators run besides sync: status, feeds, prune, metrics, healthchecks, secret URLs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import subprocess

from conftest import CLI, account_yaml, write_config
from feeds import read_nights

from escapia_ical.state import delete_state, read_state, write_state
from escapia_ical.status import load_status, save_status

SECRET = "feed-token-secret-one-0123456789"
NEW_SECRET = "feed-token-secret-two-9876543210"


def configure(deployment, extra_top: str = "", account_extra: str = "") -> None:
    write_config(deployment.config, account_yaml(extra=account_extra))
    if extra_top:
        deployment.config.write_text(extra_top + deployment.config.read_text())


def test_status_table_json_and_max_age(deployment):
    empty = deployment.run("status")
    assert empty.returncode == 2 and "no feeds recorded yet" in empty.stdout
    deployment.sandbox.fail_unit("1020-105", status=500)
    assert deployment.run("sync").returncode == 1
    table = deployment.run("status")
    assert table.returncode == 2  # 1020-105 was never published fresh
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["FEED", "AGE", "EVENTS", "LAST", "ERROR"]
    assert len(lines) == 1 + len(deployment.sandbox.unit_ids())
    failing = next(line for line in lines if "sandbox/1020-105" in line)
    assert "!" in failing and "never" in failing and "HTTP 500" in failing
    fresh = next(line for line in lines if "sandbox/1020-101" in line)
    assert re.search(r"sandbox/1020-101\s+\d+s\s+\d+\s*$", fresh), fresh
    deployment.sandbox.clear_faults()
    assert deployment.run("sync").returncode == 0
    assert deployment.run("status").returncode == 0
    assert deployment.run("status", "--max-age", "0s").returncode == 2
    data = json.loads(deployment.run("status", "--json").stdout)
    assert data["stale"] == 0 and len(data["feeds"]) == len(deployment.sandbox.unit_ids())
    assert all(f["last_error"] is None and f["age_seconds"] < 60 for f in data["feeds"])
    bad = deployment.run("status", "--max-age", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_metrics_file(deployment):
    metrics = deployment.root / "textfile" / "escapia.prom"
    configure(deployment, f"metrics_file: {metrics}\n")
    deployment.sandbox.fail_unit("1020-105", status=503)
    assert deployment.run("sync").returncode == 1
    text = metrics.read_text()
    units = len(deployment.sandbox.unit_ids())
    assert text.count("escapia_ical_feed_age_seconds{") == units - 1  # one never succeeded
    assert 'escapia_ical_feed_failing{account="sandbox",unit="1020-105"} 1.0' in text
    assert 'escapia_ical_feed_failing{account="sandbox",unit="1020-101"} 0.0' in text
    assert "escapia_ical_run_exit_code 1.0" in text
    # Timestamps, so that `time() - …` keeps growing when cron stops.
    last_run = float(re.search(r"^escapia_ical_last_run_timestamp_seconds (\S+)$", text, re.M).group(1))
    assert abs(last_run - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert re.search(r'^escapia_ical_account_last_success_timestamp_seconds\{account="sandbox"\} \S+$', text, re.M)
    assert text.count("escapia_ical_feed_last_change_timestamp_seconds{") == units - 1
    assert re.search(r'escapia_ical_requests_total\{account="sandbox",operation="GetUnitNonAvailability",'
                     r'status="503"\} 3\.0', text), text
    assert f'escapia_ical_feeds_rewritten_total{{account="sandbox"}} {units - 1}.0' in text
    deployment.sandbox.clear_faults()
    assert deployment.run("sync").returncode == 0
    text = metrics.read_text()
    assert "escapia_ical_run_exit_code 0.0" in text
    assert re.search(r'status="503"\} 3\.0', text), "counters add up across runs"
    assert f'escapia_ical_feeds_rewritten_total{{account="sandbox"}} {units}.0' in text
    assert not [p for p in metrics.parent.iterdir() if p.name != "escapia.prom"], "no temp file left"


def test_healthcheck_pings(deployment, healthchecks):
    url, received = healthchecks
    configure(deployment, f"healthcheck_url: {url}\n")
    assert deployment.run("sync").returncode == 0
    deployment.sandbox.fail_unit("1020-101", status=500)
    assert deployment.run("sync", "--full").returncode == 1
    assert received == ["/ping/5e5a7e1d-c0ffee-uuid/start", "/ping/5e5a7e1d-c0ffee-uuid/0",
                        "/ping/5e5a7e1d-c0ffee-uuid/start", "/ping/5e5a7e1d-c0ffee-uuid/1"]
    configure(deployment, "healthcheck_url: http://127.0.0.1:9/ping/c0ffee-uuid\n")  # nobody listens
    deployment.sandbox.clear_faults()
    unreachable = deployment.run("sync")
    assert unreachable.returncode == 0, "a failed ping only warns"
    assert "healthcheck ping /start failed" in unreachable.stderr and "c0ffee" not in unreachable.stderr


def test_secret_feed_names_rotation_and_grace(deployment):
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {SECRET}\n"
                                        "    feed_token_grace_days: 0\n")
    assert deployment.run("sync").returncode == 0
    folder = deployment.output / "sandbox"
    names = sorted(p.name for p in folder.iterdir())
    assert all(re.fullmatch(r".+-[0-9a-f]{32}\.ics", n) for n in names), names
    listing = deployment.run("feeds", "--base-url", "https://feeds.example.com/")
    assert listing.returncode == 0
    urls = [line.split("\t")[3] for line in listing.stdout.splitlines()]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == names
    assert all(u.startswith("https://feeds.example.com/sandbox/") for u in urls)
    # Offline, from state: no secret in the environment, Escapia unreachable; same URLs.
    offline = deployment.run("feeds", "--base-url", "https://feeds.example.com/", SANDBOX_SECRET=None,
                             SANDBOX_ID=None, SANDBOX_URL="http://127.0.0.1:9")
    assert offline.returncode == 0 and offline.stdout == listing.stdout, offline.stderr
    live = deployment.run("feeds", "--live", "--base-url", "https://feeds.example.com/")
    assert sorted(live.stdout.splitlines()) == sorted(listing.stdout.splitlines())
    assert deployment.run("sync").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == names, "stable across runs"

    # Rotation with a grace period: old names keep being updated, then vanish.
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {NEW_SECRET}\n"
                                        "    feed_token_grace_days: 1\n")
    assert deployment.run("sync").returncode == 0
    both = sorted(p.name for p in folder.iterdir())
    assert len(both) == 2 * len(names) and set(names) < set(both)
    during_grace = [line.split("\t")[3].rsplit("/", 1)[1] for line in deployment.run("feeds").stdout.splitlines()]
    assert sorted(during_grace) == sorted(set(both) - set(names))  # only the names to paste
    unit = "1020-105"
    old = next(n for n in names if n.startswith(unit + "-"))
    new = next(n for n in both if n.startswith(unit + "-") and n != old)
    start = dt.date.today() + dt.timedelta(days=50)
    deployment.sandbox.add_reservation(unit, start, start + dt.timedelta(days=2))
    assert deployment.run("sync").returncode == 0
    assert (folder / old).read_bytes() == (folder / new).read_bytes()
    assert read_nights(folder / old) == deployment.truth(unit)
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {NEW_SECRET}\n"
                                        "    feed_token_grace_days: 0\n")
    assert deployment.run("sync").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(set(both) - set(names))


def test_a_stray_feed_file_is_never_touched(deployment):
    assert deployment.run("sync").returncode == 0
    kept = deployment.feed(deployment.sandbox.unit_ids()[0]).read_bytes()
    stray = deployment.output / "sandbox" / "no-longer-listed.ics"
    stray.write_bytes(kept)
    assert deployment.run("sync").returncode == 0
    for args in (("prune", "--dry-run"), ("prune", "--now")):
        result = deployment.run(*args)
        assert result.returncode == 0 and result.stdout == ""
        assert f"{stray} is not in the state" in result.stderr
    assert stray.read_bytes() == kept


def test_a_unit_no_longer_configured_is_retired_not_stale(deployment):
    first, second = deployment.sandbox.unit_ids()[:2]
    assert deployment.run("sync").returncode == 0
    recorded = load_status(deployment.state)
    an_hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    for unit in recorded["accounts"]["sandbox"]["units"].values():
        unit["last_success"] = an_hour_ago  # every feed an hour old ...
    save_status(deployment.state, recorded)
    write_config(deployment.config, account_yaml(units=f'["{first}"]'))
    assert deployment.run("sync").returncode == 0  # ... but the one still configured
    status = deployment.run("status", "--max-age", "15m")
    assert status.returncode == 0, status.stdout
    lines = status.stdout.splitlines()
    assert len(lines) == 1 + len(deployment.sandbox.unit_ids())  # the header, every feed
    assert sum("retired since" in line for line in lines) == len(deployment.sandbox.unit_ids()) - 1
    assert "retired" not in next(line for line in lines if f"sandbox/{first} " in line)
    removed = deployment.run("prune", "--now")
    assert removed.returncode == 0 and f"removed {deployment.feed(second)}" in removed.stdout
    assert len(deployment.run("status").stdout.splitlines()) == 2
    assert stat.S_IMODE((deployment.state / "status.db").stat().st_mode) == 0o640


def test_status_names_a_failed_account_and_needs_no_secrets(deployment):
    """A wrong password fails one account as a whole: its feeds have no unit error of their
    own, so status must say so (and exit 2) — and it must do so for a monitoring user whose
    environment holds no Escapia credential at all."""
    write_config(deployment.config, account_yaml() + account_yaml("escapianet-per_unit", name="soap"))
    assert deployment.run("sync").returncode == 0
    no_secrets = {"SANDBOX_ID": None, "SANDBOX_SECRET": None, "SANDBOX_SOAP_USER": None,
                  "SANDBOX_SOAP_PASSWORD": None}
    fine = deployment.run("status", **no_secrets)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert fine.stderr == ""
    assert deployment.run("sync", SANDBOX_SOAP_PASSWORD="wrong").returncode == 1
    failed = deployment.run("status", **no_secrets)
    assert failed.returncode == 2
    line = next(line for line in failed.stdout.splitlines() if line.startswith("soap: "))
    assert "last run failed at" in line and "497" in line and "last success: 20" in line, line
    assert not any(line.startswith("sandbox: ") for line in failed.stdout.splitlines())
    data = json.loads(deployment.run("status", "--json", **no_secrets).stdout)
    assert data["ok"] is False and [p["account"] for p in data["problems"]] == ["soap"]
    assert deployment.run("sync").returncode == 0
    assert deployment.run("status", **no_secrets).returncode == 0


def test_status_catches_a_dead_cron_and_an_account_never_synced(deployment):
    assert deployment.run("sync").returncode == 0
    recorded = load_status(deployment.state)
    twenty_minutes_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)).isoformat()
    recorded["run"]["finished"] = twenty_minutes_ago
    save_status(deployment.state, recorded)
    dead = deployment.run("status", "--max-age", "15m")
    assert dead.returncode == 2
    assert dead.stdout.splitlines()[0].startswith("the last sync finished 20m ago"), dead.stdout
    assert "is cron running?" in dead.stdout.splitlines()[0]
    assert deployment.run("status", "--max-age", "30m").returncode == 0  # feeds are fresh too
    write_config(deployment.config, account_yaml() + account_yaml("escapianet-batch", name="later"))
    never = deployment.run("status", "--max-age", "30m")
    assert never.returncode == 2 and "later: never synced" in never.stdout


def test_every_command_takes_verbosity_and_a_closed_pipe_is_quiet(deployment):
    assert deployment.run("sync").returncode == 0
    for command in (["status"], ["feeds"], ["prune", "--dry-run"], ["accept", "--account", "sandbox"],
                    ["check-config"], ["status", "--json"]):
        for flag in ("-v", "-q"):
            result = deployment.run(*command, flag)
            assert "no such option" not in result.stderr, (command, flag, result.stderr)
    # `status | true`: the reader is gone before a line is written; no "internal error".
    reader, writer = os.pipe()
    os.close(reader)
    closed = subprocess.run([CLI, "status", "--config", str(deployment.config), "-v"], stdout=writer,
                            stderr=subprocess.PIPE, text=True, env=deployment.env(), cwd=deployment.root,
                            timeout=60)
    os.close(writer)
    assert closed.stderr == "" and closed.returncode == 141


def test_rotate_one_unit_now_and_revoke_a_leaked_name_for_good(deployment):
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {SECRET}\n"
                                        "    feed_token_grace_days: 7\n")
    assert deployment.run("sync").returncode == 0
    folder = deployment.output / "sandbox"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    unit, other = "1020-105", "1020-101"
    leaked = next(n for n in before if n.startswith(unit + "-"))
    rotated = deployment.run("rotate", "--account", "sandbox", "--unit", unit, "--base-url", "https://f.example")
    assert rotated.returncode == 0, rotated.stderr
    account, unit_id, url = rotated.stdout.strip().split("\t")
    new = url.rsplit("/", 1)[1]
    assert (account, unit_id) == ("sandbox", unit) and url.startswith("https://f.example/sandbox/")
    pasted = [line.split("\t")[3] for line in deployment.run("feeds").stdout.splitlines() if unit in line]
    assert [p.rsplit("/", 1)[1] for p in pasted] == [new], "only the new name is one to paste"
    assert new != leaked and (folder / new).read_bytes() == before[leaked], "the new URL works at once"
    assert "old names keep being updated for 7 days" in rotated.stderr
    assert SECRET not in rotated.stdout + rotated.stderr
    # Only that unit: every other name is untouched; the old name stays during the grace period.
    assert {p.name for p in folder.iterdir()} == set(before) | {new}
    start = dt.date.today() + dt.timedelta(days=40)
    deployment.sandbox.add_reservation(unit, start, start + dt.timedelta(days=2))
    assert deployment.run("sync").returncode == 0
    assert read_nights(folder / new) == read_nights(folder / leaked) == deployment.truth(unit)
    # The URL leaked: revoke it now. The name is deleted and never written again.
    again = deployment.run("rotate", "--account", "sandbox", "--unit", unit, "--revoke-now")
    newest = again.stdout.strip().split("\t")[2].rsplit("/", 1)[1]
    assert again.returncode == 0 and not (folder / leaked).exists() and not (folder / new).exists()
    for args in (("sync",), ("sync", "--full")):
        assert deployment.run(*args).returncode == 0
        assert not (folder / leaked).exists() and not (folder / new).exists(), args
    assert read_nights(folder / newest) == deployment.truth(unit)
    assert (folder / next(n for n in before if n.startswith(other + "-"))).exists()
    listing = deployment.run("feeds").stdout
    assert newest in listing and leaked not in listing and new not in listing
    # names.json lost: each published feed recorded its generation, the newest name stays.
    names_json = deployment.state / "accounts" / "sandbox" / "names.json"  # names the document
    state = read_state(names_json)
    assert state["revoked"], state
    delete_state(names_json)
    assert deployment.run("sync", "--full").returncode == 0
    assert not (folder / leaked).exists() and not (folder / new).exists()
    assert read_nights(folder / newest) == deployment.truth(unit)
    # Generations lost everywhere but the revocations kept: the unit fails, the name stays gone.
    write_state(names_json, {"revoked": state["revoked"]})
    delete_state(deployment.state / "accounts" / "sandbox" / "feeds.json")
    refused = deployment.run("sync", "--full")
    assert refused.returncode == 1 and "was revoked" in refused.stderr
    assert not (folder / leaked).exists()


def test_rotate_needs_secret_names(deployment):
    assert deployment.run("sync").returncode == 0
    refused = deployment.run("rotate", "--account", "sandbox")
    assert refused.returncode == 2 and "need `feed_tokens: true`" in refused.stderr


def test_tables_have_json_and_a_busy_sandbox_port_is_one_clear_line(deployment):
    assert deployment.run("sync").returncode == 0
    units = json.loads(deployment.run("list-units", "--account", "sandbox", "--json").stdout)
    assert sorted(u["id"] for u in units) == sorted(deployment.sandbox.unit_ids())
    assert all(set(u) == {"id", "code", "name", "feed"} for u in units)
    listed = json.loads(deployment.run("feeds", "--json").stdout)
    assert sorted(f["unit"] for f in listed) == sorted(deployment.sandbox.unit_ids())
    busy = deployment.run("sandbox", "--port", str(deployment.sandbox.port))
    assert busy.returncode == 2 and "internal error" not in busy.stderr
    assert f"cannot listen on 127.0.0.1:{deployment.sandbox.port}: Address already in use" in busy.stderr


def test_no_secret_feed_name_reaches_logs_status_or_the_status_page(deployment):
    """status.db is readable by a monitoring group and the page may be shared: a feed's
    secret name must appear in neither, nor on stderr, even inside an error."""
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {SECRET}\n")
    assert deployment.run("sync").returncode == 0
    folder = deployment.output / "sandbox"
    names = [p.name for p in folder.iterdir()]
    broken = folder / names[0]
    broken.unlink()
    broken.mkdir()  # the unit's feed cannot be written: an error naming its path
    failed = deployment.run("sync", "--force")
    assert failed.returncode == 1 and "-***.ics" in failed.stderr, failed.stderr
    page = deployment.root / "page.html"
    assert deployment.run("report", "--html", str(page)).returncode == 0
    shown = (failed.stderr + deployment.run("status", "--json").stdout + deployment.run("status").stdout
             + json.dumps(load_status(deployment.state))
             + (deployment.state / "status.db").read_text(encoding="utf-8", errors="replace") + page.read_text())
    tokens = {name.rsplit("-", 1)[1].removesuffix(".ics") for name in names}
    assert not [t for t in tokens if t in shown]


def test_profile_feeds_rotate_and_prune_with_their_unit(deployment):
    profiles = "feeds:\n  profiles:\n    prep: {buffer_after_days: 1}\n    cleaner: {include: [reservation]}\n"
    configure(deployment, account_extra=f"    feed_tokens: true\n    feed_token_secret: {SECRET}\n")
    text = deployment.config.read_text().replace("feeds:\n", profiles)
    deployment.config.write_text(text)
    assert deployment.run("sync").returncode == 0
    unit, other = "1020-105", "1020-101"
    folder = deployment.output / "sandbox"
    names = {p: next(f.name for f in (folder / p).iterdir() if f.name.startswith(unit + "-")) for p in ("prep", "cleaner")}
    default = next(f.name for f in folder.glob("*.ics") if f.name.startswith(unit + "-"))
    assert len({default, *names.values()}) == 3  # a token per profile: one URL does not give away another
    rotated = deployment.run("rotate", "--account", "sandbox", "--unit", unit)
    assert rotated.returncode == 0, rotated.stderr
    urls = [line.split("\t")[2] for line in rotated.stdout.splitlines()]
    assert len(urls) == 3 and {u.rsplit("/", 2)[1] for u in urls} == {"sandbox", "prep", "cleaner"}
    new = {u.rsplit("/", 2)[1]: u.rsplit("/", 1)[1] for u in urls}
    for profile in ("prep", "cleaner"):  # the new name works at once, the old one through the grace
        assert (folder / profile / new[profile]).read_bytes() == (folder / profile / names[profile]).read_bytes()
    listed = json.loads(deployment.run("feeds", "--json").stdout)
    assert {r["url"].rsplit("/", 1)[1] for r in listed if r["unit"] == unit} == set(new.values())
    start = dt.date.today() + dt.timedelta(days=40)
    deployment.sandbox.add_reservation(unit, start, start + dt.timedelta(days=2))
    assert deployment.run("sync").returncode == 0
    for profile in ("prep", "cleaner"):
        assert read_nights(folder / profile / new[profile]) == read_nights(folder / profile / names[profile])
        assert start in read_nights(folder / profile / new[profile])
    again = deployment.run("rotate", "--account", "sandbox", "--unit", unit, "--revoke-now")
    assert again.returncode == 0
    assert not any((folder / p / n).exists() for p, n in [*names.items(), *((p, new[p]) for p in names)])
    assert len(list((folder / "prep").glob(unit + "-*"))) == 1
    # A unit no longer selected: prune --now takes its profile feeds with it.
    write_config(deployment.config, account_yaml(units=f'["{other}"]', extra=f"    feed_tokens: true\n"
                                                 f"    feed_token_secret: {SECRET}\n"))
    deployment.config.write_text(deployment.config.read_text().replace("feeds:\n", profiles))
    assert deployment.run("sync").returncode == 0
    pruned = deployment.run("prune", "--now")
    assert pruned.returncode == 0, pruned.stderr
    assert not list(folder.glob(f"*/{unit}-*")) and not list(folder.glob(f"{unit}-*"))
    assert list(folder.glob(f"prep/{other}-*")) and "removed" in pruned.stdout
    # A profile taken out of the config: kept (withdrawn) until prune, then removed.
    deployment.config.write_text(deployment.config.read_text().replace("    cleaner: {include: [reservation]}\n", ""))
    assert deployment.run("sync", "--full").returncode == 0
    assert list(folder.glob(f"cleaner/{other}-*"))
    assert deployment.run("prune").returncode == 0 and list(folder.glob(f"cleaner/{other}-*"))  # grace
    pruned = deployment.run("prune", "--now")
    assert "profile cleaner is no longer configured" in pruned.stdout
    assert not list(folder.glob("cleaner/*.ics")) and list(folder.glob(f"prep/{other}-*"))
