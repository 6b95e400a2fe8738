"""Consistent wrongness: Escapia answers that parse but are wrong, run after run, against
the real CLI — the publish policy's matrix (README "The publish policy").

Each case: a clean sync; the fault (it stays); three syncs, after each of which no feed may
lack a future night the sandbox's truth blocks, the units the wrong answer would cost
nights must be reported held (status.json), and the run must exit 1. Then a genuine
cancellation must show within two runs: HSAPI's change feed shows it cancelled, which frees
it whatever else is held; EscapiaNET has only the other calendar operation to show it free,
which under the breaker is not enough (a glitch can empty both), so there it shows once
``escapia-ical accept`` releases the mass loss (the next sync publishes Escapia's answer,
exit 0). Finally, with the fault cleared, a sync converges on the truth (exit 0, silent).
``WRONG_MATRIX=1 pytest -s`` prints one line per case for the closing note.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import FUTURE_DAYS, PAST_DAYS, Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.sandbox import Sandbox
from escapia_ical.status import load_status

DAY = dt.timedelta(days=1)
Truth = dict[str, set[dt.date]]


@dataclass(frozen=True)
class Wrong:
    id: str
    mode: str
    fault: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # What the faulty answer blocks for a unit, from the sandbox (None: it varies per run).
    answer: Callable[[Stays, str], set[dt.date]] | None = None
    message: str = "Escapia's calendar would free"
    breaker: bool | None = True  # a mass loss: the breaker trips, `accept` releases it (None: may trip)
    cancel: str | None = "now"  # a genuine cancellation shows while the fault lasts ("now"),
    # once the mass loss is accepted ("accept"), or cannot while the fault lasts (None)
    args: tuple[str, ...] = ()  # for the faulty runs
    uncovered: bool = False  # the faulty answer leaves future nights uncovered (an error, exit 1)
    gains: bool = False  # the faulty answer adds nights: once accepted, only another accept frees them


def blocking(sandbox: Sandbox):
    """unit -> the [start, end) of its stays, holds and blocking work orders (all it blocks)."""
    return lambda unit: sorted(sandbox.data.blocking_spans(unit))


def nights_of(stays) -> set[dt.date]:
    return {s + i * DAY for s, e in stays for i in range((e - s).days)}


# What a faulty answer blocks for a unit: ``stays(unit)`` gives the unit's [start, end) stays
# (the sandbox's, or the sandbox's minus one about to be cancelled).
Stays = Callable[[str], list[tuple[dt.date, dt.date]]]


def nothing(stays: Stays, unit: str) -> set[dt.date]:
    return set()


def same_as(source: str):
    return lambda stays, unit: nights_of(stays(source))


def shifted(days: int, api: str):
    """HSAPI moves each whole stay that overlaps the dates asked; EscapiaNET moves the
    segment, i.e. the nights of the window, and leaves its first ``days`` nights uncovered
    (published as blocked)."""
    def answer(stays: Stays, unit: str) -> set[dt.date]:
        start, end = dt.date.today() - dt.timedelta(days=PAST_DAYS), dt.date.today() + FUTURE_DAYS * DAY
        if api == "hsapi":  # (the sandbox reads the end asked inclusively)
            return {n + days * DAY for n in nights_of((s, e) for s, e in stays(unit) if s <= end and e > start)}
        head = {start + i * DAY for i in range(days)}
        return {n + days * DAY for n in nights_of(stays(unit)) if start <= n < end} | head
    return answer


ALL = None
PER_UNIT, BATCH, FULL, INCREMENTAL = "escapianet-per_unit", "escapianet-batch", "hsapi-full", "hsapi"
CASES = [
    Wrong("all-empty", FULL, "empty", answer=nothing),
    Wrong("all-empty", INCREMENTAL, "empty", answer=nothing, args=("--full",)),
    Wrong("all-empty", PER_UNIT, "empty", {"op": "UnitCalendarAvail", "fill": "A"}, answer=nothing,
          cancel="accept"),
    Wrong("all-empty", BATCH, "empty", {"op": "UnitCalendarAvailBatch", "fill": "A"}, answer=nothing,
          cancel="accept"),
    Wrong("same-answer", FULL, "same_answer", {"source": "1020-105"}, answer=same_as("1020-105")),
    Wrong("same-answer", BATCH, "same_answer", {"source": "1020-101", "op": "UnitCalendarAvailBatch"},
          answer=same_as("1020-101"), cancel="accept", gains=True),
    Wrong("shifted-30d", FULL, "shift", {"days": 30}, answer=shifted(30, "hsapi"), gains=True),
    Wrong("shifted-30d", PER_UNIT, "shift", {"days": 30, "op": "UnitCalendarAvail"},
          answer=shifted(30, "escapianet"), uncovered=True, cancel="accept", gains=True),
    Wrong("flaky-every-3rd", FULL, "flaky", {"every": 3}, breaker=None),
    Wrong("string-cut-short", PER_UNIT, "short_string", {"op": "UnitCalendarAvail"},
          message="the answer is cut short", breaker=False, cancel=None),
    Wrong("string-cut-short", BATCH, "short_string", {}, message="the answer is cut short", breaker=False,
          cancel=None),
    Wrong("3-day-segment", PER_UNIT, "short_coverage", {"op": "UnitCalendarAvail"},
          message="Escapia's answer does not cover", breaker=False, cancel=None),
    Wrong("duplicate-calendar", BATCH, "duplicate_calendar", {"unit": "1020-101"},
          message="2 calendars for unit '1020-101' in one answer", breaker=False),
]


def deploy(root, sandbox, mode: str) -> Deployment:
    config = root / "accounts.yaml"
    # EscapiaNET in full mode: every wrong answer meets every calendar (quiet ticks: test_quiet.py)
    write_config(config, account_yaml(mode, extra="    mode: full\n" if mode.startswith("escapianet") else ""))
    return Deployment(root, sandbox, config, root / "output", root / "state", mode)


def future(nights: set[dt.date]) -> set[dt.date]:
    today = dt.date.today()
    return {n for n in nights if n >= today}


def lost_nights(d: Deployment) -> dict[str, int]:
    """Per unit: future nights the truth blocks that its feed does not."""
    return {u: len(future(d.truth(u)) - read_nights(d.feed(u))) for u in d.sandbox.unit_ids()}


def status_of(d: Deployment) -> dict[str, Any]:
    return load_status(d.state)["accounts"]["sandbox"]


def held_units(d: Deployment) -> set[str]:
    return {u for u, entry in status_of(d)["units"].items() if entry.get("held")}


def expected_held(d: Deployment, c: Wrong) -> set[str]:
    """Units whose feed blocks future nights the faulty answer frees."""
    end = d.window[1]
    return {u for u in d.sandbox.unit_ids()
            if {n for n in future(read_nights(d.feed(u))) if n < end} - c.answer(blocking(d.sandbox), u)}


def a_stay_to_cancel(d: Deployment, c: Wrong) -> tuple[str, str, set[dt.date]]:
    """Return (unit, reservation, nights that must become free): a future stay that, once
    cancelled, neither another stay nor the faulty answer blocks."""
    units = d.sandbox.unit_ids()
    if c.fault == "same_answer":  # only the source's own answer is its own
        units = [c.kwargs["source"]] if c.kwargs["source"] != "1020-105" else ["1020-101"]
    if c.fault == "duplicate_calendar":
        units = [u for u in units if u != c.kwargs["unit"]]
    today, end = dt.date.today(), d.window[1]
    for unit in units:
        for stay in d.sandbox.reservations(unit):
            start, stop = dt.date.fromisoformat(stay["start"]), dt.date.fromisoformat(stay["end"])
            if start <= today + 2 * DAY or stop >= end:
                continue
            def without(u: str, this=(start, stop), unit=unit) -> list[tuple[dt.date, dt.date]]:
                return [s for s in blocking(d.sandbox)(u) if not (u == unit and s == this)]
            after = c.answer(without, unit) if c.answer else set()
            must_free = nights_of([(start, stop)]) - nights_of(without(unit)) - after
            if must_free:
                return unit, stay["id"], must_free
    raise AssertionError("no stay to cancel")


MATRIX: list[str] = []


@pytest.mark.parametrize("c", CASES, ids=[f"{c.mode}-{c.id}" for c in CASES])
def test_consistent_wrongness(c: Wrong, tmp_path):
    with Sandbox(max_page_size=3) as sandbox:
        d = deploy(tmp_path, sandbox, c.mode)
        assert (r := d.run("sync")).returncode == 0, r.stderr
        sandbox.inject(c.fault, **c.kwargs)
        lost_total, codes, held_seen = 0, [], set()
        for _ in range(3):
            expected = expected_held(d, c) if c.answer else None
            result = d.run("sync", *c.args)
            codes.append(result.returncode)
            assert result.returncode == 1 and c.message in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
            lost = lost_nights(d)
            lost_total += sum(lost.values())
            assert not any(lost.values()), f"feeds lost booked nights: {lost}"
            held = held_units(d)
            held_seen |= held
            if c.message == "Escapia's calendar would free" and expected is not None:
                assert held == expected
            if c.breaker is not None:
                assert (status_of(d).get("breaker") is not None) == (c.breaker and bool(held))
        if c.cancel:
            unit, reservation, must_free = a_stay_to_cancel(d, c)
            sandbox.cancel_reservation(reservation)
            for _ in (1, 2):
                d.run("sync", *c.args)
                if not must_free & read_nights(d.feed(unit)):
                    break
            if c.cancel == "now":
                assert not must_free & read_nights(d.feed(unit)), "the cancellation did not show in two runs"
            else:  # shown free only by the other calendar operation: the breaker holds it
                assert must_free <= read_nights(d.feed(unit))
            assert not any(lost_nights(d).values())
        if c.breaker:  # (not for flaky answers: which units lose nights changes every run)
            accepted = d.run("accept", "--account", "sandbox", "--by", "night-shift")
            assert accepted.returncode == 0 and "accepted sandbox/" in accepted.stdout, accepted.stderr
            assert status_of(d)["accepted"][-1]["by"] == "night-shift"
            released = d.run("sync", *c.args)
            assert released.returncode == (1 if c.uncovered else 0), released.stderr
            assert "would free" not in released.stderr and not held_units(d)
            end = d.window[1]
            for u in sandbox.unit_ids():  # what Escapia says, now that an operator accepted it
                shown = {n for n in future(read_nights(d.feed(u))) if n < end}
                assert shown == {n for n in future(c.answer(blocking(sandbox), u)) if n < end}, u
            if c.cancel == "accept":
                assert not must_free & read_nights(d.feed(unit))
        sandbox.clear_faults()
        final = d.run("sync", *(("--full",) if c.mode == INCREMENTAL else ()))
        if c.breaker and c.gains:  # the accepted calendar had wrong nights: freeing them all at
            assert final.returncode == 1 and "breaker" in final.stderr  # once is a mass loss again
            assert d.run("accept", "--account", "sandbox").returncode == 0
            assert d.run("sync").returncode == 0  # (saying what was accepted)
            final = d.run("sync")
        assert (final.returncode, final.stderr) == (0, "")
        assert all(read_nights(d.feed(u)) == d.truth(u) for u in sandbox.unit_ids())
        assert held_units(d) == set() and status_of(d).get("breaker") is None
    line = (f"{c.id} | {c.mode} | 3 runs | {lost_total} | {'/'.join(map(str, codes))} | "
            f"{len(held_seen)} held{' + breaker' if c.breaker else ''} | "
            f"cancellation {({'now': 'shown', 'accept': 'shown after accept'}).get(c.cancel, 'n/a')} | "
            f"accept {'released' if c.breaker else 'n/a'}")
    if os.environ.get("WRONG_MATRIX"):
        print(f"\nMATRIX | {line}")


@pytest.mark.parametrize("mode", [FULL, PER_UNIT])
def test_once_escapia_is_right_again_holds_and_the_breaker_go_by_themselves(tmp_path, mode):
    """No accept: a shifted calendar is held by the breaker (the feeds gain the shifted
    nights); when the answers are right again, the shifted nights go and every feed is the
    truth, in one run."""
    with Sandbox(max_page_size=3) as sandbox:
        d = deploy(tmp_path, sandbox, mode)
        assert d.run("sync").returncode == 0
        sandbox.inject("shift", days=30, **({"op": "UnitCalendarAvail"} if mode == PER_UNIT else {}))
        for _ in range(2):
            assert d.run("sync").returncode == 1
        assert status_of(d).get("breaker") is not None
        sandbox.clear_faults()
        final = d.run("sync")
        assert (final.returncode, final.stderr) == (0, "")
        assert all(read_nights(d.feed(u)) == d.truth(u) for u in sandbox.unit_ids())
        assert held_units(d) == set() and status_of(d).get("breaker") is None
