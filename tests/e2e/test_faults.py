"""The fault matrix: every fault the sandbox can inject, against the real CLI.

Each case: a clean sync (exit 0) and a snapshot of every feed; then one new stay per unit
(so that valid data would change every feed), the fault, and a sync under it; then
``clear_faults()`` and a clean sync that must converge to the truth. Expectations:

* ``VALID``: the fault still yields valid data (latency, one 503, a short Retry-After, a
  10 MB but valid body, ...): exit 0 and every feed equals the new truth.
* ``FAILS``: the fault makes a unit's (or the account's) answer unusable: exit 1, the
  one-line error names the problem, the victims' feeds keep their bytes, every other feed
  equals the new truth.
* ``GUARDED``: the fault yields well-formed but wrong data that would blank calendars (empty
  lists, end-before-start only, absurd dates), in ONE answer per unit: no feed may lose a
  booked night from today on (the publish policy holds the loss, or blocks what the answer
  does not cover; consistent wrongness over several runs is in test_wrong_answers.py).

Always: no dot file or partial feed in the output, every feed parses, no traceback, every
stderr line starts with ``escapia-ical: ``, and on exit 1 the summary line comes last.
The outcome of each case is in MATRIX at the end of the module.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import icalendar
import pytest
from conftest import Deployment, account_yaml, write_config
from feeds import nights_icalendar, read_nights

from escapia_ical.sandbox import Sandbox
from escapia_ical.state import delete_state, read_state

# HSAPI rows run in full mode (every call of a full sync happens every run); INCREMENTAL
# rows cover what only the change-feed mode calls.
HSAPI, INCREMENTAL = "hsapi-full", "hsapi"
PER_UNIT, BATCH = "escapianet-per_unit", "escapianet-batch"
VALID, FAILS, GUARDED = "valid", "fails", "guarded"
VICTIM = "1020-101"
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    mode: str
    fault: str
    expect: str
    message: str = ""  # in stderr (for VALID: the only warning allowed)
    victims: tuple[str, ...] | None = None  # FAILS: feeds that must keep their bytes; None: all
    kwargs: dict[str, Any] = field(default_factory=dict)  # op, unit, times and params
    once_per_unit: bool = False  # one bad answer per unit (unit=U, times=1 for every unit)
    new_stays: int | None = None  # how many units get a new stay (None: every one)
    http: dict[str, Any] = field(default_factory=dict)  # config overrides
    xfail: str | None = None  # a known product bug: the case raises ProductBug


class ProductBug(AssertionError):
    """The outcome is safe (feeds kept, exit code right) but the product still mishandles
    the fault: it reports an unexpected exception, or repeats requests it should not."""


case = Case


GUARD = "Escapia's calendar would free"  # a held loss (feeds/policy.py)
ONE = {"unit": VICTIM}
ONLY = (VICTIM,)
FAST_TIMEOUT = {"read_timeout": 1}
SHORT_WAIT = {"retry_max_wait": 2}
CASES = [
    # -- transport ------------------------------------------------------------------------
    case("latency", HSAPI, "latency", VALID, kwargs={"seconds": 0.05}),
    case("latency", BATCH, "latency", VALID, kwargs={"seconds": 0.3}),
    case("timeout", HSAPI, "timeout", FAILS, "GetUnitNonAvailability: timed out", ONLY,
         {**ONE, "seconds": 2}, http=FAST_TIMEOUT),
    case("timeout", BATCH, "timeout", FAILS, "UnitCalendarAvailBatch: timed out", None,
         {"op": "UnitCalendarAvailBatch", "seconds": 1}, http={"read_timeout": 0.25}),
    case("timeout-once", PER_UNIT, "timeout", VALID,
         kwargs={"op": "UnitCalendarAvail", "times": 1, "seconds": 2}, http=FAST_TIMEOUT),
    case("reset", HSAPI, "reset", FAILS, "GetUnitNonAvailability: connection failed", ONLY, ONE),
    case("reset", PER_UNIT, "reset", FAILS, "UnitCalendarAvail: connection failed", ONLY, ONE),
    case("reset-once", BATCH, "reset", VALID, kwargs={"op": "UnitCalendarAvailBatch", "times": 1}),
    case("500", HSAPI, "status", FAILS, "GetUnitNonAvailability: HTTP 500", ONLY, {**ONE, "status": 500}),
    case("502-units", HSAPI, "status", FAILS, "SearchUnitSummaries: HTTP 502", None,
         {"op": "SearchUnitSummaries", "status": 502}),
    case("503", PER_UNIT, "status", FAILS, "UnitCalendarAvail: HTTP 503", ONLY, {**ONE, "status": 503}),
    case("502-changes", INCREMENTAL, "status", FAILS, "GetReservationChanges: HTTP 502", None,
         {"op": "GetReservationChanges", "status": 502}),
    # (Few changes: with more changed reservations than units the run fetches every unit
    # instead of looking each one up.)
    case("500-reservation", INCREMENTAL, "status", FAILS, "GetReservationById: HTTP 500", None,
         {"op": "GetReservationById", "status": 500}, new_stays=2),
    case("malformed-changes", INCREMENTAL, "malformed", FAILS, "answer is not valid JSON", None,
         {"op": "GetReservationChanges"}),
    case("503-once-changes", INCREMENTAL, "status", VALID, kwargs={"op": "GetReservationChanges",
                                                                   "status": 503, "times": 1}),
    case("500", INCREMENTAL, "status", FAILS, "GetUnitNonAvailability: HTTP 500", ONLY, {**ONE, "status": 500}),
    case("500", BATCH, "status", FAILS, "UnitCalendarAvailBatch: HTTP 500", None,
         {"op": "UnitCalendarAvailBatch", "status": 500}),
    case("503-once", HSAPI, "status", VALID, kwargs={"op": "GetUnitNonAvailability", "times": 1, "status": 503}),
    case("502-once", PER_UNIT, "status", VALID, kwargs={"op": "UnitSearch", "times": 1, "status": 502}),
    case("429-short", HSAPI, "rate_limit", VALID, http=SHORT_WAIT,
         kwargs={"op": "GetUnitNonAvailability", "times": 1, "retry_after": 1}),
    case("429-short", BATCH, "rate_limit", VALID, http=SHORT_WAIT,
         kwargs={"op": "UnitCalendarAvailBatch", "times": 1, "retry_after": 1}),
    case("429-long", HSAPI, "rate_limit", FAILS, "GetUnitNonAvailability: HTTP 429", ONLY,
         {**ONE, "retry_after": 120}),
    # -- broken bodies --------------------------------------------------------------------
    case("malformed", HSAPI, "malformed", FAILS, "answer is not valid JSON", None,
         {"op": "GetUnitNonAvailability"}),
    case("malformed-units", HSAPI, "malformed", FAILS, "SearchUnitSummaries: answer is not valid JSON",
         None, {"op": "SearchUnitSummaries"}),
    case("malformed", PER_UNIT, "malformed", FAILS, "answer is not well-formed XML", ONLY, ONE),
    case("malformed", BATCH, "malformed", FAILS, "UnitCalendarAvailBatch: answer is not well-formed XML",
         None, {"op": "UnitCalendarAvailBatch"}),
    case("truncated", HSAPI, "truncated", FAILS, "answer is not valid JSON", ONLY, ONE),
    case("truncated-units", HSAPI, "truncated", FAILS, "SearchUnitSummaries: answer is not valid JSON",
         None, {"op": "SearchUnitSummaries"}),
    case("truncated-wire", HSAPI, "truncated", FAILS, "GetUnitNonAvailability: connection failed", ONLY,
         {**ONE, "announce_full": True}),
    case("truncated", PER_UNIT, "truncated", FAILS, "answer is not well-formed XML", ONLY, ONE),
    case("truncated", BATCH, "truncated", FAILS, "UnitCalendarAvailBatch: answer is not well-formed XML",
         None, {"op": "UnitCalendarAvailBatch"}),
    case("entity-bomb", PER_UNIT, "entity_bomb", FAILS, "UnitCalendarAvail: answer holds a DTD", None,
         {"op": "UnitCalendarAvail"}),
    case("entity-bomb-units", BATCH, "entity_bomb", FAILS, "UnitSearch: answer holds a DTD", None,
         {"op": "UnitSearch"}),
    case("deep-nesting", HSAPI, "deep_nesting", FAILS, "answer is not valid JSON", ONLY, ONE),
    case("10MB-key", HSAPI, "huge_body", VALID, kwargs={"op": "GetUnitNonAvailability", "times": 3}),
    case("10MB-space-units", HSAPI, "huge_body", VALID, kwargs={"op": "SearchUnitSummaries", "style": "whitespace"}),
    case("10MB-key", BATCH, "huge_body", VALID, kwargs={"op": "UnitCalendarAvailBatch"}),
    case("10MB-space", PER_UNIT, "huge_body", VALID, kwargs={**ONE, "style": "whitespace"}),
    case("40MB", HSAPI, "huge_body", FAILS, "answer larger than", ONLY, {**ONE, "size": 40 * MB}),
    # -- well-formed but wrong data ----------------------------------------------------------
    case("empty-units", HSAPI, "empty", FAILS, "Escapia lists no units", None, {"op": "SearchUnitSummaries"}),
    case("empty-units", PER_UNIT, "empty", FAILS, "Escapia lists no units", None, {"op": "UnitSearch"}),
    case("empty", HSAPI, "empty", GUARDED, GUARD, once_per_unit=True),
    case("empty-string", PER_UNIT, "empty", FAILS, "no DailyAvailability", ONLY, ONE),
    case("all-available", PER_UNIT, "empty", GUARDED, GUARD, kwargs={"fill": "A"}, once_per_unit=True),
    case("all-available", BATCH, "empty", GUARDED, GUARD, kwargs={"fill": "A"}, once_per_unit=True),
    case("wrong-types-units", HSAPI, "wrong_types", FAILS, "SearchUnitSummaries: expected an object with a "
         "'results' list", None, {"op": "SearchUnitSummaries"}),
    case("wrong-types", HSAPI, "wrong_types", FAILS, "startDate: expected a date, got int", None),
    case("wrong-types", PER_UNIT, "wrong_types", FAILS, "StartDate: not a date", ONLY, ONE),
    case("wrong-types", BATCH, "wrong_types", FAILS, "StartDate: not a date", None),
    case("end-before-start", HSAPI, "end_before_start", FAILS, "before it starts", None, once_per_unit=True),
    case("end-before-start", PER_UNIT, "end_before_start", VALID, "EndDate"),
    case("end-before-start", BATCH, "end_before_start", VALID, "EndDate"),
    case("year-1", HSAPI, "absurd_dates", GUARDED, GUARD, kwargs={"year": 1}, once_per_unit=True),
    case("year-9999", HSAPI, "absurd_dates", GUARDED, GUARD, kwargs={"year": 9999}, once_per_unit=True),
    case("year-1", PER_UNIT, "absurd_dates", GUARDED, "does not cover", kwargs={"year": 1}, once_per_unit=True),
    case("year-9999", PER_UNIT, "absurd_dates", FAILS, "runs past year 9999", ONLY, {**ONE, "year": 9999}),
    case("year-9999", BATCH, "absurd_dates", FAILS, "runs past year 9999", None, {"year": 9999}),
    # -- odd but contract-legal NonAvailability items (sandbox/odd_items.py) -------------------
    case("no-date-range", HSAPI, "odd_items", VALID, "NonAvailability items without a dateRange",
         kwargs={"item": "no_range"}),
    case("null-item", HSAPI, "odd_items", VALID, "NonAvailability items without a dateRange",
         kwargs={"item": "null"}),
    case("json-net-ref", HSAPI, "odd_items", VALID, kwargs={"item": "ref"}),
    case("datetimes", HSAPI, "odd_items", VALID, kwargs={"item": "datetimes"}),
    case("empty-end", HSAPI, "odd_items", FAILS, ".NET's empty date (0001-01-01)", ONLY,
         {**ONE, "item": "empty_end"}),
    # -- auth -----------------------------------------------------------------------------
    # A full sync of 8 units makes 13 calls (3 unit pages, 2 change-feed reads, 8 calendars):
    # the token dies mid-run. (Up to 8 threads share a token, so one that dies after 2 uses
    # would also fail the retries; real tokens expire by time, once, and then every thread's
    # retry uses the one fresh token.)
    case("token-expires-mid-run", HSAPI, "expire_tokens", VALID, kwargs={"calls": 8}),
    case("token-expires-mid-run", INCREMENTAL, "expire_tokens", VALID, kwargs={"calls": 12}),  # plan: 10
]


def deploy(root, sandbox, mode: str, http: dict[str, Any]) -> Deployment:
    config = root / "accounts.yaml"
    # EscapiaNET in full mode: every case's fault meets the listing and every calendar (a
    # quiet tick would ask one summary batch; tests/e2e/test_quiet.py covers those).
    extra = "    mode: full\n" if mode.startswith("escapianet") else ""
    write_config(config, account_yaml(mode, extra=extra), retry_max_wait=http.get("retry_max_wait", 0))
    if "read_timeout" in http:
        config.write_text(config.read_text().replace("read_timeout: 10", f"read_timeout: {http['read_timeout']}"))
    return Deployment(root, sandbox, config, root / "output", root / "state", mode)


@pytest.fixture(scope="module")
def clean_syncs(tmp_path_factory):
    """mode -> a folder holding output/ and state/ after a clean sync (exit 0, silent)
    against a sandbox seeded like every case's: each case starts from a copy, which saves
    it one run of the CLI."""
    done: dict[str, Any] = {}

    def get(mode: str):
        if mode not in done:
            root = tmp_path_factory.mktemp(f"clean-{mode}")
            with Sandbox(max_page_size=3, guest_data_in_nonavailability=True) as sandbox:
                result = deploy(root, sandbox, mode, {}).run("sync")
            assert (result.returncode, result.stderr) == (0, ""), result.stderr
            done[mode] = root
        return done[mode]

    return get


def add_a_stay_everywhere(d: Deployment, units: int | None = None) -> None:
    """Give every unit (or the first ``units``) a new two-night stay, so that fresh data
    changes every feed."""
    today = dt.date.today()
    for unit in d.sandbox.unit_ids()[:units]:
        start = today + dt.timedelta(days=600)
        while d.sandbox.blocked_nights(unit, start, start + dt.timedelta(days=2)):
            start += dt.timedelta(days=1)
        d.sandbox.add_reservation(unit, start, start + dt.timedelta(days=2))


def feeds(d: Deployment) -> dict[str, bytes]:
    """Every file in the output tree; none may be hidden or unparsable."""
    files = {str(p.relative_to(d.output)): p.read_bytes() for p in d.output.rglob("*") if p.is_file()}
    for name, data in files.items():
        assert not any(part.startswith(".") for part in name.split("/")), f"temp file visible: {name}"
        assert name.endswith(".ics"), name
        icalendar.Calendar.from_ical(data)
    return files


def check_stderr(stderr: str, returncode: int) -> list[str]:
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    assert all(line.startswith("escapia-ical: ") for line in lines), stderr
    if returncode == 1:
        assert lines and lines[-1].startswith("escapia-ical: error: sync incomplete: "), stderr
    return lines


def inject(d: Deployment, c: Case) -> None:
    if c.once_per_unit:
        for unit in d.sandbox.unit_ids():
            d.sandbox.inject(c.fault, unit=unit, times=1, **c.kwargs)
    else:
        d.sandbox.inject(c.fault, **c.kwargs)


@pytest.mark.parametrize("c", [pytest.param(c, id=f"{c.mode}-{c.id}", marks=[pytest.mark.xfail(
    strict=True, raises=ProductBug, reason=c.xfail)] if c.xfail else []) for c in CASES])
def test_fault(c: Case, tmp_path, sandbox, clean_syncs):
    d = deploy(tmp_path, sandbox, c.mode, c.http)
    for folder in ("output", "state"):
        shutil.copytree(clean_syncs(c.mode) / folder, tmp_path / folder)
    # Same account, another sandbox (another port, so another base_url): not another source.
    identity = tmp_path / "state" / "accounts" / "sandbox" / "identity.json"
    assert read_state(identity) is not None
    delete_state(identity)
    before = feeds(d)
    units = {d.feed(u).relative_to(d.output).as_posix(): u for u in sandbox.unit_ids()}
    assert set(before) == set(units)
    add_a_stay_everywhere(d, c.new_stays)
    inject(d, c)
    sandbox.reset_request_log()

    result = d.run("sync")
    bugs = [line for line in result.stderr.splitlines() if "a bug" in line]
    batches = sandbox.request_count("UnitCalendarAvailBatch")
    after = feeds(d)
    assert set(after) == set(before), "no feed appears or disappears"
    lines = check_stderr(result.stderr, result.returncode)
    changed = {name for name in after if after[name] != before[name]}
    fresh = {name for name in after if read_nights(d.output / name) == d.truth(units[name])}
    if c.expect == VALID:
        assert result.returncode == 0, result.stderr
        assert fresh == set(after), "every feed shows the new truth"
        assert all(c.message and c.message in line for line in lines), result.stderr
    elif c.expect == FAILS:
        assert result.returncode == 1, result.stderr
        assert c.message in result.stderr, result.stderr
        victims = set(after) if c.victims is None else {n for n, u in units.items() if u in c.victims}
        assert not changed & victims, f"a failed unit's feed changed: {sorted(changed & victims)}"
        assert fresh >= set(after) - victims, "every other feed shows the new truth"
    else:  # GUARDED: one wrong answer per unit must not cost any feed a booked night
        assert result.returncode == 1 and c.message in result.stderr, result.stderr
        today = dt.date.today()  # (the new stays are not in the wrong answers: only what was known)
        lost = {name for name in after
                if {n for n in nights_icalendar(before[name]) if n >= today} - read_nights(d.output / name)}
        assert not lost, f"feeds that lost booked nights: {sorted(lost)}"

    sandbox.clear_faults()
    again = d.run("sync")
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    final = feeds(d)
    assert all(read_nights(d.output / name) == d.truth(u) for name, u in units.items()) and set(final) == set(units)
    if os.environ.get("FAULT_MATRIX"):
        print(f"\nMATRIX | {c.mode} | {c.id} | exit {result.returncode} | changed {len(changed)}/{len(after)} "
              f"| fresh {len(fresh)} | batches {batches} | {lines[0][14:] if lines else ''}")
    if bugs:
        raise ProductBug(f"an unexpected exception, reported as a bug: {bugs[0]}")
    if batches > 2 * 3:  # retry_attempts 3 (at most 3 for the run, and 3 more as the other view)
        raise ProductBug(f"the batch was requested {batches} times in one run (at most 6 expected)")


# The matrix (FAULT_MATRIX=1 pytest -s prints one line per case). "kept" = the feed keeps
# its bytes; "fresh" = it shows the new truth. Every case ends with a clean run that
# converges (exit 0, every feed == truth).
#
# fault              mode       injected                    exit  feeds              error line
# latency            hsapi      0.05 s, every request         0   8 fresh            -
# latency            batch      0.3 s, every request          0   8 fresh            -
# timeout            hsapi      unit 1020-101, 2 s > 1 s      1   1 kept, 7 fresh    GetUnitNonAvailability: timed out
# timeout            batch      batch, 1 s > 0.25 s           1   8 kept             UnitCalendarAvailBatch: timed out [xfail: 24 requests]
# timeout once       per_unit   one UnitCalendarAvail         0   8 fresh            -
# reset              hsapi      unit 1020-101                 1   1 kept, 7 fresh    connection failed (... reset by peer)
# reset              per_unit   unit 1020-101                 1   1 kept, 7 fresh    connection failed
# reset once         batch      one batch                     0   8 fresh            -
# 500                hsapi      unit 1020-101                 1   1 kept, 7 fresh    GetUnitNonAvailability: HTTP 500
# 502                hsapi      SearchUnitSummaries           1   8 kept (account)   SearchUnitSummaries: HTTP 502
# 503                per_unit   unit 1020-101                 1   1 kept, 7 fresh    HTTP 503: SOAP fault: Server Too Busy
# 500                batch      batch                         1   8 kept             HTTP 500: SOAP fault [xfail: 24 requests]
# 503 once           hsapi      one GetUnitNonAvailability    0   8 fresh            -
# 502 once           per_unit   one UnitSearch                0   8 fresh            -
# 429 Retry-After 1  hsapi      one GetUnitNonAvailability    0   8 fresh            -
# 429 Retry-After 1  batch      one batch                     0   8 fresh            -
# 429 Retry-After 120 hsapi     unit 1020-101                 1   1 kept, 7 fresh    HTTP 429 (no retry)
# malformed JSON     hsapi      every GetUnitNonAvailability  1   8 kept             answer is not valid JSON
# malformed JSON     hsapi      SearchUnitSummaries           1   8 kept (account)   answer is not valid JSON
# malformed XML      per_unit   unit 1020-101                 1   1 kept, 7 fresh    not well-formed XML
# malformed XML      batch      batch                         1   8 kept             not well-formed XML [xfail: 8 requests]
# truncated JSON     hsapi      unit / SearchUnitSummaries    1   1 kept / 8 kept    answer is not valid JSON
# truncated on wire  hsapi      unit 1020-101                 1   1 kept, 7 fresh    connection failed (IncompleteRead)
# truncated XML      per_unit   unit 1020-101                 1   1 kept, 7 fresh    not well-formed XML
# truncated XML      batch      batch                         1   8 kept             not well-formed XML [xfail: 8 requests]
# entity bomb        per_unit   every UnitCalendarAvail       1   8 kept             holds a DTD or entity declarations
# entity bomb        batch      UnitSearch                    1   8 kept (account)   holds a DTD or entity declarations
# deep nesting       hsapi      unit 1020-101                 1   1 kept, 7 fresh    not valid JSON (RecursionError)
# 10 MB valid body   hsapi      3 x key / units whitespace    0   8 fresh            -
# 10 MB valid body   batch/per_unit  key / whitespace         0   8 fresh            -
# 40 MB body         hsapi      unit 1020-101                 1   1 kept, 7 fresh    answer larger than 33554432 bytes
# empty unit list    hsapi, per_unit                          1   8 kept (account)   Escapia lists no units ...
# empty calendars    hsapi      [] once per unit              1   8 kept             held (breaker): would free ... nights
# empty string       per_unit   unit 1020-101                 1   1 kept, 7 fresh    no DailyAvailability
# all 'A' once       per_unit   once per unit                 1   8 kept             held: the batch still shows them booked
# all 'A' once       batch      once (one batch)              1   8 kept             held: UnitCalendarAvail shows them booked
# wrong types        hsapi      units: results {} / dates int 1   8 kept             expected ... 'results' list / got int
# wrong types        per_unit/batch  StartDate "20261123"     1   1 / 8 kept         StartDate: not a date
# end before start   hsapi      once per unit                 1   8 kept             item N ends (...) before it starts: unclear
# end before start   per_unit, batch (EndDate < StartDate)    0   8 fresh            warning: EndDate ...; trusting the string
# year 1 / 9999      hsapi      once per unit                 1   8 kept             held (breaker); 'ranges ignored' once
# year 1             per_unit   once per unit                 1   8 blocked          does not cover ...: published as blocked
# year 9999          per_unit/batch                           1   1 / 8 kept         a N-day string ... runs past year 9999
# odd items         hsapi      no dateRange / null           0   8 fresh            'NonAvailability items without a dateRange' once
# odd items         hsapi      $ref / T00:00:00 datetimes    0   8 fresh            -
# 0001-01-01 end    hsapi      unit 1020-101                 1   1 kept, 7 fresh    .NET's empty date (0001-01-01): unclear
# tokens die after 2 calls  hsapi                             0   8 fresh            - (401, refresh, retry)
