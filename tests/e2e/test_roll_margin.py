"""Midnight with the real CLI against the sandbox (issue 13, the daily roll).

The CLI's "today" is the host's local date (README, ``feeds.past_days``), so midnight is
crossed by running the same ``escapia-ical sync`` in a time zone where it is already
tomorrow (TZ=UTC-24 or so), right after a steady tick: no reconcile is due and the change
feed is quiet, so every feed is rolled from state. Fetches asked for a margin past the
window, so the night the window gains is known: only the feeds a block at an edge changes
are rewritten, the others keep their bytes and mtime, and the roll costs what a steady
tick costs. A unit whose state predates the margin still gets its placeholder night.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from conftest import Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.feeds.names import feed_filename
from escapia_ical.state import read_state, write_state

TODAY = dt.date.today()
DAY = dt.timedelta(days=1)
PROFILE = "  profiles:\n    channel:\n      summary: Booked\n"  # no kinds: changes with the default feed


def tomorrow_tz() -> str:
    """Return a POSIX TZ in which the local date is already tomorrow (a minute after its
    midnight, or later): the CLI's today moves, its clock (UTC) does not."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ahead = dt.datetime.combine(TODAY + DAY, dt.time(0, 1)) - now
    minutes = min(max(int(ahead.total_seconds() // 60) + 1, 0), 24 * 60)
    if (now + dt.timedelta(minutes=minutes)).date() != TODAY + DAY:
        pytest.skip("no time zone puts this host's tomorrow at this moment")
    return f"ROLL-{minutes // 60:02d}:{minutes % 60:02d}"  # POSIX: UTC-x is x hours ahead


def configure(deployment: Deployment, mode: str) -> None:
    write_config(deployment.config, account_yaml(mode))
    text = deployment.config.read_text(encoding="utf-8").replace("feeds:\n", "feeds:\n" + PROFILE)
    deployment.config.write_text(text, encoding="utf-8")


def files(deployment: Deployment, unit: str) -> tuple[tuple[bytes, int], ...]:
    paths = (deployment.feed(unit), deployment.output / "sandbox" / "channel" / feed_filename(unit))
    return tuple((p.read_bytes(), p.stat().st_mtime_ns) for p in paths)


@pytest.mark.parametrize("mode", ["hsapi", "escapianet-batch"])
def test_midnight_rewrites_only_the_feeds_whose_content_changes(deployment, mode):
    sandbox = deployment.sandbox
    configure(deployment, mode)
    units = sandbox.unit_ids()
    crossing, entering, old = units[0], units[1], units[2]
    start, end = deployment.window  # today's
    sandbox.add_reservation(crossing, start - 2 * DAY, start + 2 * DAY)  # crosses the window's start
    sandbox.add_reservation(entering, end, end + 2 * DAY)  # booked in the margin only
    assert (first := deployment.run("sync")).returncode == 0, first.stderr
    for unit in units:
        assert read_nights(deployment.feed(unit)) == deployment.truth(unit), unit
    assert end not in read_nights(deployment.feed(entering)), "the margin is never shown"

    stamps = deployment.state / "accounts" / "sandbox" / "feeds.json"
    entries = read_state(stamps)
    assert {e["through"] for e in entries.values()} == {(end + 2 * DAY).isoformat()}
    entries[feed_filename(old)]["through"] = end.isoformat()  # state from before the margin
    write_state(stamps, entries)

    sandbox.reset_request_log()
    assert (steady := deployment.run("sync")).returncode == 0, steady.stderr
    steady_requests = Counter(r["op"] for r in sandbox.requests)
    before = {u: files(deployment, u) for u in units}
    sandbox.reset_request_log()
    rolled = deployment.run("sync", TZ=tomorrow_tz())
    assert rolled.returncode == 0, rolled.stderr
    assert Counter(r["op"] for r in sandbox.requests) == steady_requests, "the roll asks Escapia nothing more"

    new_start, new_end = start + DAY, end + DAY
    # A feed changes iff a block covers the night that drops out or the one that enters.
    edges = {u for u in units if {start, end} & sandbox.blocked_nights(u, start, new_end)}
    untouched = set(units) - edges - {old}
    assert {crossing, entering} <= edges and untouched, "some feeds must stay as they are"
    for unit in units:
        truth = sandbox.blocked_nights(unit, new_start, new_end)
        expected = truth | {end} if unit == old else truth
        assert read_nights(deployment.feed(unit)) == expected, unit
        after = files(deployment, unit)
        if unit in edges | {old}:
            assert after[0][0] != before[unit][0][0] and after[1][0] != before[unit][1][0], unit
        else:
            assert after == before[unit], f"{unit}: rewritten although it shows the same"
    assert read_nights(deployment.feed(crossing)) >= {new_start, start + DAY}
    assert start not in read_nights(deployment.feed(crossing))
    assert end in read_nights(deployment.feed(entering)) and new_end not in read_nights(deployment.feed(entering))
    days = {e["day"] for e in read_state(stamps).values()}
    assert days == {(TODAY + DAY).isoformat()}, "every entry shows tomorrow's window"
