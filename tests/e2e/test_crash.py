"""Crash safety and a full disk: readers only ever see whole calendars; the next run heals.

A reader loops over the feeds while syncs are killed with SIGKILL at random moments; a
tiny tmpfs runs out of space or turns read-only under a sync.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import icalendar
import pytest
from conftest import CLI, Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.sandbox import Sandbox

ITERATIONS = int(os.environ.get("ESCAPIA_ICAL_CRASH_ITERATIONS", "50"))  # more for a soak
TODAY = dt.date.today()


class Reader(threading.Thread):
    """Reads every feed in a loop; records anything that is not one whole calendar."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.reads, self.bad = folder, 0, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for path in list(self.folder.glob("*.ics")):
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                self.reads += 1
                try:
                    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
                    icalendar.Calendar.from_ical(data)
                except Exception as exc:  # noqa: BLE001 - every kind of bad read is recorded
                    self.bad.append((path.name, repr(exc)[:200]))


@pytest.fixture
def big(tmp_path):
    with Sandbox(extra_units=40, max_page_size=50) as sandbox:
        config = tmp_path / "accounts.yaml"
        write_config(config, account_yaml())
        yield Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state")


def test_kill_9_at_random_moments_never_exposes_a_partial_feed(big):
    assert big.run("sync").returncode == 0
    folder = big.output / "sandbox"
    reader = Reader(folder)
    reader.start()
    rng = random.Random(20261123)
    unit = big.sandbox.unit_ids()[-1]
    killed = 0
    deadline = time.monotonic() + 120
    try:
        for i in range(ITERATIONS):
            if time.monotonic() > deadline:
                break
            start = TODAY + dt.timedelta(days=100 + i)
            big.sandbox.add_reservation(unit, start, start + dt.timedelta(days=1))  # content changes
            process = subprocess.Popen([CLI, "sync", "--force", "--full", "--config", str(big.config)], env=big.env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 0.8))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
    finally:
        reader.stop.set()
        reader.join(timeout=10)
    assert reader.bad == []
    assert reader.reads > 200
    assert killed >= min(25, ITERATIONS // 2), f"only {killed} of {ITERATIONS} syncs were killed mid-run"
    result = big.run("sync")
    assert result.returncode == 0, result.stderr
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not [p for p in big.state.rglob(".*.tmp")]
    for unit_id in big.sandbox.unit_ids():
        assert read_nights(big.feed(unit_id)) == big.truth(unit_id)
    print(f"kill -9 iterations: {ITERATIONS}, killed mid-run: {killed}, reads: {reader.reads}")


@pytest.fixture
def small_disk(tmp_path):
    """The output folder on a 192 KiB tmpfs (root), or None where mounting is not allowed."""
    output = tmp_path / "output"
    output.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k,mode=0755", "tmpfs", str(output)],
        capture_output=True).returncode == 0
    yield output if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(output)], check=False)


def test_full_disk_keeps_every_previous_feed(deployment, small_disk):
    if small_disk is None:
        pytest.skip("needs root to mount a tmpfs; the read-only test covers unprivileged runs")
    assert deployment.run("sync").returncode == 0
    before = {p.name: p.read_bytes() for p in (deployment.output / "sandbox").iterdir()}
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)  # until ENOSPC
    for unit_id in deployment.sandbox.unit_ids():
        start = TODAY + dt.timedelta(days=300)
        deployment.sandbox.add_reservation(unit_id, start, start + dt.timedelta(days=2))
    result = deployment.run("sync")
    assert result.returncode == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in (deployment.output / "sandbox").iterdir()} == before
    filler.unlink()
    assert deployment.run("sync").returncode == 0
    for unit_id in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit_id)) == deployment.truth(unit_id)


def test_read_only_output_keeps_every_previous_feed(deployment, small_disk):
    assert deployment.run("sync").returncode == 0
    folder = deployment.output / "sandbox"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    if small_disk is not None:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    else:
        folder.chmod(0o555)
    for unit_id in deployment.sandbox.unit_ids():
        start = TODAY + dt.timedelta(days=300)
        deployment.sandbox.add_reservation(unit_id, start, start + dt.timedelta(days=2))
    try:
        result = deployment.run("sync")
    finally:
        if small_disk is not None:
            subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        else:
            folder.chmod(0o755)
    assert result.returncode == 1
    assert ("Read-only file system" in result.stderr or "Permission denied" in result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert deployment.run("sync").returncode == 0
    for unit_id in deployment.sandbox.unit_ids():
        assert read_nights(deployment.feed(unit_id)) == deployment.truth(unit_id)
