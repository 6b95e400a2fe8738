"""How the sync behaves as a process: on a terminal, when killed, when quiet."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import time

from conftest import CLI
from feeds import read_nights


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
