"""Oversized answers cost bounded memory: the real CLI's peak RSS with every calendar answer
padded to 40 MB stays within twice its peak on normal answers (40 units, 8 threads).

Before the fix, each refused answer's buffered 32 MiB stayed alive through a reference
cycle (an exception's traceback): 1.36 GB peak at 40 units. Now an answer whose
Content-Length is too large is refused before a byte is read, and answers of unknown size
(chunked) are buffered beyond 256 KiB by one request at a time, in a memory map that goes
back to the OS as soon as the answer is refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, Deployment, account_yaml, write_config

from escapia_ical.sandbox import Sandbox

MB = 1024 * 1024
UNITS = 40


# Linux records the old memory's high-water mark at exec: a child spawned by this (large)
# pytest process would report pytest's peak as its own. A small launcher spawns the CLI
# instead and reports its ru_maxrss from os.wait4.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
child.returncode = 0  # reaped by wait4
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_kib(d: Deployment) -> tuple[int, int, float]:
    """Run ``escapia-ical sync``; return its exit code, peak RSS (KiB) and wall time."""
    with open(d.root / "stderr", "w") as stderr:
        started = time.monotonic()
        launched = subprocess.run([sys.executable, "-c", LAUNCHER, CLI, "sync", "--config", str(d.config)],
                                  stdout=subprocess.PIPE, stderr=stderr, env=d.env(), cwd=d.root, text=True,
                                  timeout=120, check=True)
    code, peak = map(int, launched.stdout.split())
    return code, peak, time.monotonic() - started


@pytest.fixture(scope="module")
def sandbox40():
    with Sandbox(extra_units=32) as server:
        assert len(server.unit_ids()) == UNITS
        yield server


def deploy(root: Path, sandbox: Sandbox) -> Deployment:
    root.mkdir()
    write_config(root / "accounts.yaml", account_yaml("hsapi-full"))
    return Deployment(root, sandbox, root / "accounts.yaml", root / "output", root / "state", "hsapi-full")


def test_oversized_answers_cost_at_most_twice_the_normal_peak(tmp_path, sandbox40):
    figures = {}
    code, normal, took = peak_rss_kib(deploy(tmp_path / "normal", sandbox40))
    assert code == 0, (tmp_path / "normal" / "stderr").read_text()
    figures["normal answers"] = (normal, took)
    for case, chunked in (("40 MB, Content-Length", False), ("40 MB, chunked", True)):
        sandbox40.clear_faults()
        sandbox40.inject("huge_body", op="GetUnitNonAvailability", size=40 * MB, chunked=chunked)
        d = deploy(tmp_path / ("chunked" if chunked else "length"), sandbox40)
        code, peak, took = peak_rss_kib(d)
        stderr = (d.root / "stderr").read_text()
        assert code == 1 and stderr.count("answer larger than 33554432 bytes") == UNITS, stderr
        figures[case] = (peak, took)
    sandbox40.clear_faults()

    print("\npeak RSS of `escapia-ical sync`, 40 units, 8 threads:")
    for case, (peak, took) in figures.items():
        print(f"  {case:24} {peak / 1024:7.1f} MiB  ({took:.1f} s)")
    for case, (peak, _) in figures.items():
        assert peak <= 2 * normal, f"{case}: peak {peak} KiB > 2 x {normal} KiB"
