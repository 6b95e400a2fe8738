"""Secrets stay secret, files get the right modes, TLS stays on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CLI, account_yaml, write_config

from escapia_ical.config import HttpPolicy
from escapia_ical.sources.http import HttpClient
from escapia_ical.state import read_state, write_state

WRONG_SECRET = "Wr0ng-s3cr3t-€-do-not-print"
WRONG_PASSWORD = "Wr0ng-passw0rd-<&>-do-not-print"


def test_no_secret_reaches_any_output(deployment):
    accounts = (account_yaml("hsapi") + account_yaml("escapianet-per_unit", name="soap")
                + account_yaml("hsapi", name="bad-rest").replace("${SANDBOX_SECRET}", WRONG_SECRET)
                + account_yaml("escapianet-batch", name="bad-soap").replace("${SANDBOX_SOAP_PASSWORD}",
                                                                            WRONG_PASSWORD))
    write_config(deployment.config, accounts)
    deployment.sandbox.fail_unit(deployment.sandbox.unit_ids()[0], status=500)
    log_file = deployment.root / "sync.log"
    runs = [deployment.run("sync", "-vv", "--log-file", str(log_file)) for _ in range(2)]
    assert all(r.returncode == 1 for r in runs)
    secrets = {"sandbox-secret", "sandbox-password", WRONG_SECRET, WRONG_PASSWORD}
    token_file = deployment.state / "accounts" / "sandbox" / "token.json"
    bearer = token_file.read_text().split('"authorization": "Bearer ')[1].split('"')[0]
    texts = {"stdout": "".join(r.stdout for r in runs), "stderr": "".join(r.stderr for r in runs),
             "log file": log_file.read_text()}
    for path in [*deployment.state.rglob("*"), *deployment.output.rglob("*")]:
        if path.is_file() and path != token_file:
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert "bad-rest: auth/token: credentials refused" in texts["stderr"]
    assert "bad-soap: UnitSearch: Escapia error" in texts["stderr"]
    for where, text in texts.items():
        for secret in secrets | {bearer}:
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert not any(s in token_file.read_text() for s in secrets), "the token file holds only the token"


def outputs_of(deployment, runs, log_file) -> dict[str, str]:
    """Return every text a run left: its stdout and stderr, the log file, every state and
    output file (the secret-grepping pattern of the test above)."""
    texts = {"stdout": "".join(r.stdout for r in runs), "stderr": "".join(r.stderr for r in runs),
             "log file": log_file.read_text(encoding="utf-8")}
    for path in [*deployment.state.rglob("*"), *deployment.output.rglob("*")]:
        if path.is_file():
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def test_healthcheck_url_and_feed_token_secret_never_reach_any_output(deployment, healthchecks):
    url, received = healthchecks
    token_secret = "feed-token-s3cret-0123456789"
    write_config(deployment.config, account_yaml(extra=f"    feed_tokens: true\n"
                                                       f"    feed_token_secret: {token_secret}\n"))
    deployment.config.write_text(f"healthcheck_url: {url}\n" + deployment.config.read_text())
    log_file = deployment.root / "sync.log"
    runs = [deployment.run("sync", "-vv", "--log-file", str(log_file))]
    assert runs[0].returncode == 0, runs[0].stderr
    assert received == ["/ping/5e5a7e1d-c0ffee-uuid/start", "/ping/5e5a7e1d-c0ffee-uuid/0"]
    texts = outputs_of(deployment, runs, log_file)
    assert "Starting new HTTP connection" in texts["stderr"], "-vv shows urllib3's lines ..."
    assert "/start HTTP/1.1" not in texts["stderr"].replace('"POST ***/start HTTP/1.1"', ""), \
        "... but a ping's line only masked, if at all"
    for where, text in texts.items():
        for secret in (url, "/ping/5e5a7e1d-c0ffee-uuid", "5e5a7e1d", token_secret, "sandbox-secret"):
            assert secret not in text, f"{secret!r} leaked into {where}"


def test_names_in_feeds_json_never_address_a_file_outside_the_folder(deployment):
    assert deployment.run("sync").returncode == 0
    victims = {"written": deployment.output / "victim.ics", "deleted": deployment.root / "victim-abs.ics"}
    for victim in victims.values():
        victim.write_bytes(b"precious")
    feeds_json = deployment.state / "accounts" / "sandbox" / "feeds.json"  # names the document
    stamps = read_state(feeds_json)
    entry = dict(stamps["1020-101.ics"])
    stamps["../victim.ics"] = entry  # an old name in its grace period: rewritten each run
    stamps[str(victims["deleted"])] = entry | {"retired": "2000-01-01T00:00:00+00:00"}  # grace over
    write_state(feeds_json, stamps)
    for args in (("sync",), ("sync", "--full"), ("prune",)):
        result = deployment.run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert all(v.read_bytes() == b"precious" for v in victims.values()), args
    assert not {"../victim.ics", str(victims["deleted"])} & set(read_state(feeds_json))


def test_a_linked_account_folder_is_refused_not_followed(deployment):
    victim = deployment.root / "victim"
    victim.mkdir()
    (victim / "1020-101.ics").write_bytes(b"precious")
    deployment.output.mkdir()
    (deployment.output / "sandbox").symlink_to(victim)
    for args in (("sync",), ("prune",)):
        result = deployment.run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert f"{deployment.output / 'sandbox'} is a symbolic link; refusing to" in result.stderr
        assert os.listdir(victim) == ["1020-101.ics"] and (victim / "1020-101.ics").read_bytes() == b"precious"
    sync = deployment.run("sync")
    assert sync.stderr.splitlines()[0] == (f"escapia-ical: error: sandbox: {deployment.output / 'sandbox'} "
                                           "is a symbolic link; refusing to write through it")


def test_a_linked_account_state_folder_is_refused_not_followed(deployment):
    victim = deployment.root / "victim"
    victim.mkdir()
    (deployment.state / "accounts").mkdir(parents=True)
    (deployment.state / "accounts" / "sandbox").symlink_to(victim)
    result = deployment.run("sync")
    assert result.returncode == 1
    assert f"{deployment.state / 'accounts' / 'sandbox'} is a symbolic link; refusing" in result.stderr
    assert os.listdir(victim) == []


def expected_state_mode(path) -> int:
    """The mode of anything in state_dir: folders 0700; status.db and its -wal/-shm 0640 (a
    monitoring group reads it); everything else (state.db and its -wal/-shm, tokens, locks) 0600."""
    if path.is_dir():
        return 0o700
    return 0o640 if path.name in {"status.db", "status.db-wal", "status.db-shm"} else 0o600


def test_file_modes(deployment):
    assert deployment.run("sync").returncode == 0
    for path in (deployment.output / "sandbox").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    found = {p.name for p in deployment.state.rglob("*")}
    assert {"state.db", "status.db", "token.json"} <= found, found
    for path in deployment.state.rglob("*"):
        assert not path.is_symlink(), path
        assert stat.S_IMODE(path.stat().st_mode) == expected_state_mode(path), path
    # A monitoring user in state_dir's group reads status.db, and nothing else.
    assert stat.S_IMODE(deployment.state.stat().st_mode) == 0o750


class _HeldPing(BaseHTTPRequestHandler):
    """A healthcheck that holds the run's last ping (``/0``) until the test lets it go: the
    run has then written both databases and still has them open (their -wal and -shm exist)."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        if self.path.endswith("/0"):
            self.server.held.set()
            self.server.release.wait(8)  # the ping gives up after 10 s
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_file_modes_of_the_databases_journals_while_a_run_has_them_open(deployment):
    """SQLite makes state.db's -wal and -shm files while it is open (and removes them when
    the last connection closes): made by the run, they must have its mode. (status.db keeps
    a rollback journal: see store/sqlite.py.)"""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeldPing)
    server.held, server.release = threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ping/held"
    deployment.config.write_text(f"healthcheck_url: {url}\n" + deployment.config.read_text())
    try:
        process = subprocess.Popen([CLI, "sync", "--config", str(deployment.config)], env=deployment.env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert server.held.wait(30), "the run never sent its last ping"
            found = {p.name: p for p in deployment.state.rglob("*")}
            journals = {"state.db-wal", "state.db-shm"}
            assert journals <= set(found), sorted(found)
            for path in found.values():
                assert not path.is_symlink(), path
                assert stat.S_IMODE(path.stat().st_mode) == expected_state_mode(path), path
        finally:
            server.release.set()
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
    finally:
        server.shutdown()
        server.server_close()
    assert not {p.name for p in deployment.state.iterdir()} & journals, "removed when the run closed them"


@pytest.mark.parametrize("name", ["state.db", "state.db-wal", "status.db", "status.db-shm"])
def test_a_linked_state_database_is_refused_not_followed(deployment, name):
    """SQLite follows symbolic links (and writes -wal/-shm beside the link's target): a link
    planted in state_dir in place of a database or its journal is refused and never written."""
    assert deployment.run("sync").returncode == 0
    victim = deployment.root / "victim"
    victim.write_bytes(b"precious")
    planted = deployment.state / name
    planted.unlink(missing_ok=True)  # (a journal is removed when the last connection closes)
    planted.symlink_to(victim)
    result = deployment.run("sync", "--force")
    assert result.returncode == 1, result.stderr
    refused = f"state database {planted} is a symbolic link; refusing it"
    first = result.stderr.splitlines()[0]
    prefix = "escapia-ical: error: sandbox: " if name.startswith("state.db") else "escapia-ical: error: "
    assert first == prefix + refused, result.stderr
    assert victim.read_bytes() == b"precious"
    assert planted.is_symlink()
    assert sorted(p.name for p in deployment.root.iterdir() if p.name.startswith("victim")) == ["victim"]


def test_tls_verification_is_on_and_plain_http_is_loopback_only(deployment):
    assert HttpClient(HttpPolicy()).session.verify is True
    write_config(deployment.config, account_yaml(base_url="http://hsapi.example.com/dragomanadapter"))
    result = deployment.run("check-config")
    assert result.returncode == 2
    assert "plain http is only allowed for loopback; use https" in result.stderr


# Nine levels, each a list repeating the previous alias nine times: 9**9 nodes from 414 bytes.
ALIAS_BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))

# Runs the CLI as its only child and reports the child's peak RSS. Address space is capped at
# 1 GiB, so that a regression dies quickly instead of eating the machine's memory.
MEASURE = """\
import resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(result.stderr)
print(result.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_alias_bomb_is_one_line_exit_2_fast_and_small(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", MEASURE, CLI, "check-config", "--config", str(bomb)],
                            capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    code, peak_kib = map(int, result.stdout.split())
    assert code == 2
    assert result.stderr == (f"escapia-ical: {bomb}:6: (yaml): aliases expand to more than 100000 nodes; "
                             "refusing (an alias bomb?)\n")
    assert seconds < 5, "the interpreter's start-up included; the check itself takes milliseconds"
    assert peak_kib < 100 * 1024
