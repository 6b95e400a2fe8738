"""How the sync behaves as a process: on a terminal, when killed, when quiet."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import time

import pytest
from conftest import CLI, account_yaml, write_config
from feeds import read_nights

from escapia_ical.status import load_status


def test_progress_bar_only_on_a_terminal(deployment):
    leader, follower = pty.openpty()
    try:
        process = subprocess.run([CLI, "sync", "--config", str(deployment.config)], env=deployment.env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
                                 timeout=60)
        os.close(follower)
        follower = None
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert process.returncode == 0
    assert b"sandbox" in shown and b"100%" in shown, shown[-300:]
    piped = deployment.run("sync", "--force")
    assert (piped.returncode, piped.stderr) == (0, "")  # no bar when stderr is not a TTY


def test_killed_sync_releases_the_lock_and_the_next_run_converges(deployment):
    deployment.sandbox.latency = 0.3
    victim = subprocess.Popen([CLI, "sync", "--config", str(deployment.config)], env=deployment.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while deployment.sandbox.request_count("GetUnitNonAvailability") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    deployment.sandbox.latency = 0.0
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    folder = deployment.output / "sandbox"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    for unit_id in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit_id)) == deployment.truth(unit_id)


def test_quiet_and_verbose(deployment):
    deployment.sandbox.fail_unit(deployment.sandbox.unit_ids()[0], status=502)
    quiet = deployment.run("sync", "-q")
    assert quiet.returncode == 1
    assert all("error" in line for line in quiet.stderr.splitlines()), quiet.stderr
    deployment.sandbox.clear_faults()
    verbose = deployment.run("sync", "-v")
    assert verbose.returncode == 0
    assert "sync finished in" in verbose.stderr and "written" in verbose.stderr


def test_sigterm_ends_the_run_at_once_and_the_next_account_is_not_started(deployment):
    """SIGTERM mid-run: in-flight requests are aborted (of both accounts running side by
    side), the next account never starts, what was done is recorded, exit 143."""
    write_config(deployment.config, account_yaml("hsapi-full", name="first")
                 + account_yaml("hsapi-full", name="other") + account_yaml("escapianet-per_unit", name="second"))
    text = deployment.config.read_text().replace("http:\n", "http:\n  max_concurrency_total: 2\n", 1)
    deployment.config.write_text(text)  # two accounts at a time: "second" waits for a turn
    deployment.sandbox.inject("latency", op="GetUnitNonAvailability", seconds=5)
    env = dict(deployment.env(), PYTHONFAULTHANDLER="1")  # a hang shows where every thread waits
    process = subprocess.Popen([CLI, "sync", "--config", str(deployment.config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while deployment.sandbox.request_count("GetUnitNonAvailability") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=10)
        pytest.fail(f"SIGTERM did not end the run in 15 s; the threads were at:\n{stderr[-6000:]}")
    took = time.monotonic() - sent
    assert process.returncode == 143, stderr
    assert took < 3, f"SIGTERM took {took:.1f} s to end the run"
    assert stderr.strip().splitlines()[-1] == "escapia-ical: stopped by SIGTERM; what was done is saved"
    assert deployment.sandbox.request_count("UnitSearch") == 0, "the next account was started"
    status = load_status(deployment.state)
    assert status["run"]["exit_code"] == 143 and "first" in status["accounts"]
    assert "second" not in status["accounts"]
    deployment.sandbox.clear_faults()
    again = deployment.run("sync")
    assert again.returncode == 0, again.stderr
    for unit_id in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit_id, "first")) == deployment.truth(unit_id)
