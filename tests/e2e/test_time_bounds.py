"""A server that trickles its answers cannot hold a run: the real CLI against the sandbox.

Before ``http.total_timeout`` a calendar answer sent one byte every 2 s (never tripping the
10 s read timeout) held its unit, and so the run, for hours: the same run against the
previous code had not ended after 120 s and was killed. Now each attempt ends after
``total_timeout`` and the run within its deadline.
"""

from __future__ import annotations

import time

from conftest import Deployment, write_config
from feeds import read_nights
from test_faults import add_a_stay_everywhere, check_stderr, feeds

TOTAL_TIMEOUT, DEADLINE = 5, 20


def bounded_config(d: Deployment) -> None:
    write_config(d.config)
    text = d.config.read_text().replace("  read_timeout: 10\n",
                                        f"  read_timeout: 10\n  total_timeout: {TOTAL_TIMEOUT}\n")
    d.config.write_text(f"deadline_seconds: {DEADLINE}\n" + text)


def test_a_trickling_calendar_answer_ends_within_the_deadline(deployment):
    d, sandbox = deployment, deployment.sandbox
    bounded_config(d)
    assert d.run("sync").returncode == 0
    before = feeds(d)
    add_a_stay_everywhere(d)
    units = sandbox.unit_ids()
    trickled = {units[0]: "body", units[1]: "headers"}
    for unit, part in trickled.items():
        sandbox.inject("trickle", op="GetUnitNonAvailability", unit=unit, seconds=2.0, part=part)
    sandbox.reset_request_log()

    started = time.monotonic()
    result = d.run("sync", timeout=DEADLINE + 30)
    took = time.monotonic() - started
    print(f"\nA run whose calendar answers trickle (1 byte / 2 s) for {len(trickled)} of {len(units)} "
          f"units ended after {took:.1f} s (total_timeout {TOTAL_TIMEOUT} s, 3 attempts, "
          f"deadline {DEADLINE} s)")

    assert result.returncode == 1, result.stderr
    assert took <= DEADLINE + 5
    lines = check_stderr(result.stderr, result.returncode)
    for unit in trickled:
        assert any(unit in line and f"GetUnitNonAvailability: no complete answer within {TOTAL_TIMEOUT} s"
                   in line for line in lines), result.stderr
    after = feeds(d)
    for unit in units:
        name = d.feed(unit).relative_to(d.output).as_posix()
        if unit in trickled:
            assert after[name] == before[name], f"{unit}: a failed unit keeps its feed's bytes"
        else:
            assert read_nights(d.feed(unit)) == d.truth(unit), f"{unit}: the others are fresh"
    assert [r["status"] for r in sandbox.requests if r["unit"] in trickled] == [200] * 3 * len(trickled)
