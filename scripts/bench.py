"""Benchmark escapia-ical against the naive baseline on the local sandbox (issue 4); see scripts/bench.

For each N in --units: a sandbox with N units and --latency s per request, then (a) the
baseline tick (a token, one GetUnitNonAvailability per unit in turn, every .ics rewritten) and
(b) the escapia-ical CLI: cold sync, steady tick (the second after the cold sync: the first one
records, once, that no feed was rewritten), tick after 5 bookings. Measured: wall time,
requests (the sandbox's count), .ics rewritten (mtime/inode/size), the CLI's peak RSS (wait4)
and CPU seconds (rusage), and the state written (the bytes of the database rows the tick added
or changed). Then at --rss-units (latency 0) a cold sync, a steady tick and the daily roll (the
first tick after midnight: the CLI's clock is moved in its process, so that the cold sync and the
steady tick run just before midnight and the roll five minutes after it), and
requests/unit/day for a 100-unit account.

Before and after, this machine's speed: the CPU of a fixed piece of interpreter-bound work
(:func:`reference_work`), by which CPU figures taken at other times are scaled to compare.

``--api escapianet`` measures an EscapiaNET batch account instead (no baseline, no
extrapolation): cold sync, steady tick, tick after 5 bookings, each with the CLI process's
CPU seconds (user + system, from rusage): the figure quiet ticks are about.

The package's bytecode is compiled first, as ``pip install`` leaves it: where
PYTHONDONTWRITEBYTECODE is set (CI images often set it) every run of the CLI would otherwise
compile its modules again, about 0.15 CPU s that no installed copy spends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import json
import math
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import requests

from escapia_ical.feeds.names import feed_filename  # unit ids may hold "/": the CLI's safe names
from escapia_ical.state import STATE_DB, STATUS_DB

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "escapia-ical"
SEEDED_UNITS = 8  # the sandbox seeds these itself; --extra-units adds the rest
CLIENT_ID, CLIENT_SECRET, PMCID = "sandbox-client", "sandbox-secret", "1020"
SOAP_USER, SOAP_PASSWORD = "sandbox-user", "sandbox-password"  # the sandbox's EscapiaNET login
HSAPI_HEADERS = {"x-homeaway-hasp-api-version": "10", "x-homeaway-hasp-api-endsystem": "EscapiaVRS",
                 "x-homeaway-hasp-api-pmcid": PMCID}
PAST_DAYS, FUTURE_DAYS = 7, 730  # the CLI's default feed window; the baseline asks for the same
CHANGES = 5  # bookings added before the "changes" tick
ACCOUNT_CONCURRENCY, TOTAL_CONCURRENCY = 8, 32  # the CLI's http.max_concurrency and max_concurrency_total
# The extrapolation (issue 4): a 100-unit account, 20 booking changes a day, a tick every 5 minutes.
X_UNITS, X_CHANGES_PER_DAY, X_TICKS_PER_DAY, BASELINE_PER_UNIT_DAY = 100, 20, 288, 288
TOKEN_OP, UNITS_OP, NONAVAIL_OP = "auth/token", "SearchUnitSummaries", "GetUnitNonAvailability"
CHILDREN: set[subprocess.Popen] = set()  # stopped on any exit, Ctrl-C included


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """Stop one child of ours (SIGINT, then SIGKILL after 5 s) and reap it."""
    if proc.returncode is None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    CHILDREN.discard(proc)


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without proxies (loopback only) or the user's ESCAPIA_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESCAPIA_") and not k.lower().endswith("_proxy")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


class Sandbox:
    """``escapia-ical sandbox`` in a subprocess, plus its JSON control API."""

    def __init__(self, units: int, latency: float, workdir: Path, ahead: float = 0) -> None:
        self.log_path = workdir / f"sandbox-{units}.log"
        command = [str(CLI), "sandbox", "--host", "127.0.0.1", "--port", "0",
                   "--extra-units", str(max(units - SEEDED_UNITS, 0)), "--latency", str(latency)]
        if ahead:  # its clock as the CLI's before a roll: its tokens expire an hour after that
            command[:1] = [sys.executable, "-c", CLOCK_AHEAD, str(ahead)]
        with self.log_path.open("wb") as out:
            # a fixed argv (our own CLI); its own session: we stop it, not the terminal's Ctrl-C
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                         env=child_env(), start_new_session=True)
        CHILDREN.add(self.proc)
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy: everything stays on 127.0.0.1
        self.url = self._wait_for_url()
        self.unit_ids = [u["id"] for u in self.control("GET", "units")["units"]]
        if len(self.unit_ids) != units:
            log(f"asked for {units} units, the sandbox has {len(self.unit_ids)}")

    def _wait_for_url(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if "listening on " in text:
                return text.split("listening on ", 1)[1].split()[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        stop(self.proc)
        raise SystemExit(f"bench: the sandbox did not start:\n{self.log_path.read_text(errors='replace')}")

    def control(self, method: str, path: str, **body) -> dict:
        # a sandbox of 10,000 units may be busy for a while after a sync
        answer = self.http.request(method, f"{self.url}/_sandbox/{path}", json=body or None, timeout=300)
        answer.raise_for_status()
        return answer.json()

    def book(self, unit: str, nights: int = 3) -> dict:
        """Add a stay on the first ``nights`` free nights from 30 days ahead (so the feed changes)."""
        today = dt.date.today()
        start, end = today + dt.timedelta(days=30), today + dt.timedelta(days=FUTURE_DAYS - 1)
        query = "truth?" + urlencode({"unit": unit, "start": start, "end": end})
        blocked = set(self.control("GET", query)["nights"])
        day = start
        while any((day + dt.timedelta(days=i)).isoformat() in blocked for i in range(nights)):
            day += dt.timedelta(days=1)
        stay = {"unit": unit, "start": day.isoformat(), "end": (day + dt.timedelta(days=nights)).isoformat()}
        self.control("POST", "reservations", **stay)
        return stay

    def close(self) -> None:
        stop(self.proc)
        self.http.close()


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (s.st_mtime_ns, s.st_ino, s.st_size)
            for p in folder.rglob("*.ics") for s in [p.stat()]} if folder.exists() else {}


def rewritten(before: dict, after: dict) -> int:
    return sum(1 for path, stamp in after.items() if before.get(path) != stamp)


def state_rows(state: Path) -> dict[tuple, int]:
    """Every row of the state databases: (database, key, part) -> (hash, length) of its body."""
    rows = {}
    for db in (STATE_DB, STATUS_DB):
        if (state / db).exists():
            with contextlib.closing(sqlite3.connect(state / db)) as con:
                for key, part, body in con.execute("SELECT key, part, body FROM documents"):
                    rows[db, key, part] = (hash(body), len(body.encode()))
    return rows


def state_written(before: dict, after: dict) -> int:
    """The bytes of the rows added or changed between two ``state_rows``."""
    return sum(size for row, (digest, size) in after.items() if before.get(row, (None,))[0] != digest)


def measure(sb: Sandbox, output: Path, action) -> dict:
    """Run ``action()`` -> extra fields; add wall time, requests counted by the sandbox,
    rewrites, and the state written."""
    sb.control("DELETE", "requests")
    before, state = snapshot(output), state_rows(output.parent / "state")
    t0 = time.perf_counter()
    extra = action()
    wall = time.perf_counter() - t0
    counts = sb.control("GET", "requests")
    return {"wall_s": round(wall, 3), "requests": counts["total"], "by_op": counts["byOp"],
            "by_status": counts["byStatus"], "files": len(snapshot(output)),
            "rewritten": rewritten(before, snapshot(output)),
            "state_kb": round(state_written(state, state_rows(output.parent / "state")) / 1024, 1), **extra}


def baseline_tick(sb: Sandbox, output: Path) -> dict:
    """The naive service: a token, one request per unit in turn, every file rewritten."""
    output.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()
    window = {"startDate": (today - dt.timedelta(days=PAST_DAYS)).isoformat(),
              "endDate": (today + dt.timedelta(days=FUTURE_DAYS)).isoformat()}
    with requests.Session() as http:
        http.trust_env = False
        answer = http.get(f"{sb.url}/hsapi/auth/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=30)
        answer.raise_for_status()
        token = answer.json()
        expires = dt.datetime.fromisoformat(token["expiration"].replace("Z", "+00:00"))
        headers = {**HSAPI_HEADERS, "Authorization": f"Bearer {token['encodedId']}"}
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        for unit in sb.unit_ids:
            answer = http.post(f"{sb.url}/hsapi/{NONAVAIL_OP}", headers=headers, timeout=30,
                               json={"nativePMSUnitID": unit, "dateRange": window})
            answer.raise_for_status()
            events = [f"BEGIN:VEVENT\r\nUID:{unit}-{i}@baseline\r\nDTSTAMP:{stamp}\r\n"
                      f"DTSTART;VALUE=DATE:{r['dateRange']['startDate'][:10].replace('-', '')}\r\n"
                      f"DTEND;VALUE=DATE:{r['dateRange']['endDate'][:10].replace('-', '')}\r\n"
                      "SUMMARY:Not available\r\nEND:VEVENT\r\n" for i, r in enumerate(answer.json())]
            (output / feed_filename(unit)).write_text(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//baseline//EN\r\n"
                + "".join(events) + "END:VCALENDAR\r\n", encoding="utf-8", newline="")
    ttl = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    return {"token_ttl_s": int(round(ttl / 60) * 60)}  # the answer's stamp has whole seconds


def baselines(sb: Sandbox, output: Path, accounts: int) -> dict:
    """The naive service for ``accounts`` accounts: one after another, each a baseline tick;
    with its CPU seconds (this process's: it runs here, while nothing else of the bench does)."""
    cpu = time.process_time()
    last = [baseline_tick(sb, output / f"bench-{i}") for i in range(accounts)][-1]
    return last | {"cpu_s": round(time.process_time() - cpu, 2)}


def file_cost(workdir: Path, files: int = 300) -> tuple[float, float]:
    """What one feed's publication costs this disk at least: a 4 KiB file created, written,
    fsynced and renamed into place, ``files`` times. Return the median seconds of wall
    time and the mean seconds of this process's CPU per file.

    The CPU is worth seeing next to the cold rows' CPU: on ext4 without a journal, creating
    a file scans past every inode freed in the last minute or more (the kernel's
    ``recently_deleted``), so a cold sync run just after a large tree was deleted (a previous
    bench's temp folder) pays up to ~1 ms of CPU per feed for it: ``ext4_create`` was 14.7 %
    of one such 10,000-unit sync's CPU samples, 2.8 % with no deletions nearby."""
    folder = workdir / "file-cost"
    folder.mkdir()
    costs = []
    cpu = time.process_time()
    for i in range(files):
        t0 = time.perf_counter()
        fd = os.open(folder / f".{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(folder / f".{i}.tmp", folder / f"{i}.ics")
        costs.append(time.perf_counter() - t0)
    return sorted(costs)[len(costs) // 2], (time.process_time() - cpu) / files


def reference_work(rounds: int = 300, repeat: int = 3) -> float:
    """This machine's speed now: the CPU seconds of a fixed piece of interpreter-bound work
    (no I/O, none of our code, so that it does not change when ours does) shaped like one
    unit's: decode a JSON answer of 55 stays, read their dates, hash and format a line each;
    the least of ``repeat`` means of ``rounds``.

    A shared VM's speed drifts within minutes: the same cold sync of 10,000 units took 19
    CPU s, and 26-33 s twenty minutes later, with this disk's file cost unchanged. CPU
    figures of runs taken at different times compare after scaling by this one."""
    day = dt.date(2026, 1, 1)
    answer = json.dumps([{"$id": str(i + 1), "dateRange": {
        "startDate": f"{day + dt.timedelta(days=13 * i)}T00:00:00",
        "endDate": f"{day + dt.timedelta(days=13 * i + 1 + i % 9)}T00:00:00"}} for i in range(55)]).encode()
    gc.collect()  # so that the bench's own garbage is not collected inside the timed loop
    means = []
    for _ in range(repeat):
        cpu = time.process_time()
        for _ in range(rounds):
            lines = []
            for item in json.loads(answer):
                start = dt.date.fromisoformat(item["dateRange"]["startDate"][:10])
                end = dt.date.fromisoformat(item["dateRange"]["endDate"][:10])
                uid = hashlib.sha256(f"bench\0{start}\0{end}".encode()).hexdigest()[:32]
                lines.append(f"BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:{start:%Y%m%d}\r\n"
                             f"DTEND;VALUE=DATE:{end:%Y%m%d}\r\nUID:{uid}@bench\r\nEND:VEVENT")
            "\r\n".join(sorted(lines)).encode()
        means.append((time.process_time() - cpu) / rounds)
    return min(means)


def physical_limit(row: dict, latency: float, keys: dict, accounts: int, per_file: float) -> float | None:
    """The wall time no client can beat for what a tick did: requests x latency / the
    requests in flight at once (each account's max_concurrency, all of them bounded by
    max_concurrency_total), plus the feeds it rewrote x ``per_file`` (file_cost)."""
    if row["scenario"].startswith("baseline"):
        return None
    in_flight = min(TOTAL_CONCURRENCY, int(keys.get("max_concurrency", ACCOUNT_CONCURRENCY)) * accounts)
    limit = row["requests"] * latency / max(1, min(in_flight, row["requests"])) + row["rewritten"] * per_file
    return round(limit, 3) if limit > 0 else None


def write_config(root: Path, account_keys: dict[str, str], api: str = "hsapi", top: str = "",
                 accounts: int = 1) -> Path:
    """The CLI's config: one account "bench", or ``accounts`` accounts bench-0.. reading the
    same sandbox (a hosted service's many property managers)."""
    keys = "".join(f"    {k}: {v}\n" for k, v in account_keys.items())
    login = (f'    pmcid: "{PMCID}"\n    client_id: ${{BENCH_CLIENT_ID}}\n'
             "    client_secret: ${BENCH_CLIENT_SECRET}\n") if api == "hsapi" else \
        "    username: ${BENCH_SOAP_USER}\n    password: ${BENCH_SOAP_PASSWORD}\n"
    names = ["bench"] if accounts == 1 else [f"bench-{i}" for i in range(accounts)]
    config = root / "accounts.yaml"
    config.write_text(f"""\
output_dir: output
state_dir: state
{top}accounts:
""" + "".join(f"""\
  - name: {name}
    api: {api}
    base_url: ${{BENCH_SANDBOX_URL}}
{login}{keys}""" for name in names), encoding="utf-8")
    config.chmod(0o600)
    return config


# The CLI with its clock moved ``seconds`` ahead: datetime's date.today() and datetime.now(),
# and time.time(), run ahead in its process (patched before anything of the CLI is
# imported); monotonic clocks, the kernel's and SQLite's times do not.
CLOCK_AHEAD = """
import datetime, sys
ahead = datetime.timedelta(seconds=float(sys.argv.pop(1)))
real_date, real_datetime = datetime.date, datetime.datetime
class Real(type):  # isinstance(a real date, the patched class) stays true
    def __instancecheck__(cls, other):
        return isinstance(other, cls.__mro__[1])
class Date(real_date, metaclass=Real):
    @classmethod
    def today(cls):
        return (real_datetime.now() + ahead).date()
class DateTime(real_datetime, metaclass=Real):
    @classmethod
    def now(cls, tz=None):
        return real_datetime.now(tz) + ahead
datetime.date, datetime.datetime = Date, DateTime
import time
real_time = time.time
time.time = lambda: real_time() + ahead.total_seconds()  # the sandbox's token times, the CLI's caches
from escapia_ical.cli import main
sys.argv[0] = "escapia-ical"
sys.exit(main())
"""


def run_sync(sb: Sandbox, root: Path, config: Path, timeout: float, ahead: float = 0) -> dict:
    """``escapia-ical sync`` in a subprocess (its clock ``ahead`` seconds); its exit code,
    own peak RSS (wait4) and CPU seconds."""
    env = child_env(BENCH_SANDBOX_URL=sb.url, BENCH_CLIENT_ID=CLIENT_ID, BENCH_CLIENT_SECRET=CLIENT_SECRET,
                    BENCH_SOAP_USER=SOAP_USER, BENCH_SOAP_PASSWORD=SOAP_PASSWORD)
    command = [str(CLI), "sync", "--config", str(config)]
    if ahead:
        command[:1] = [sys.executable, "-c", CLOCK_AHEAD, str(ahead)]
    with (root / "sync.log").open("w+b") as out:
        proc = subprocess.Popen(command, stdout=out,  # noqa: S603
                                stderr=subprocess.STDOUT, env=env, cwd=root)
        CHILDREN.add(proc)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        CHILDREN.discard(proc)
        out.seek(0)
        tail = out.read().decode(errors="replace").strip().splitlines()[-5:]
    if proc.returncode == 2:  # a config error: nothing else will work either
        raise SystemExit("bench: escapia-ical refused the config:\n" + "\n".join(tail))
    result = {"exit": proc.returncode, "rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "disk_kb": round(usage.ru_oublock * 512 / 1024, 1)}  # blocks the kernel wrote for it
    return result | ({"output_tail": tail} if proc.returncode else {})


def bench(n: int, latency: float, scenarios: tuple[str, ...], args, workdir: Path, keys: dict,
          label: str = "", api: str = "hsapi") -> list[dict]:
    """One sandbox of ``n`` units (read by ``args.accounts`` accounts); the baseline and/or
    the CLI's ticks, in order."""
    log(f"{n} units: starting the sandbox (latency {latency} s)")
    root = Path(tempfile.mkdtemp(prefix=f"{n}-", dir=workdir))
    top = (f"deadline_seconds: {args.deadline}\nhttp:\n  read_timeout: {min(args.deadline, 300)}\n"
           if args.deadline else "")
    # With a roll: every tick before it runs from ten minutes before midnight, the roll after
    # it; the sandbox keeps the first clock (its tokens last an hour from then).
    now = dt.datetime.now()
    to_midnight = (dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time()) - now).total_seconds()
    # "steady-real": the same steady tick with the real clock (the stored times are then hours
    # ahead: nothing is due), to show what the moved clock costs (isinstance on patched classes).
    clock = {"before": to_midnight - 600 if "roll" in scenarios else 0, "roll": to_midnight + 300,
             "steady-real": 0}
    sb, rows = Sandbox(n, latency, root, clock["before"]), []
    config = write_config(root, keys, api, top, args.accounts)
    try:
        for scenario in scenarios:
            extra, output = {}, root / ("baseline" if scenario == "baseline" else "output")
            action = partial(baselines, sb, output, args.accounts) if scenario == "baseline" \
                else partial(run_sync, sb, root, config, args.timeout, clock.get(scenario, clock["before"]))
            if scenario == "steady":  # the tick after a cold sync records that nothing was rewritten
                action()
            if scenario == "changes":
                extra["booked"] = [sb.book(sb.unit_ids[i * n // CHANGES]) for i in range(CHANGES)]
            log(f"{n} units: {scenario} tick" + (" (sequential requests)" if scenario == "baseline" else ""))
            # A steady tick changes nothing, so it can be run again: the one of least CPU of
            # --repeat is kept (one run on a shared VM varies by 15-30 %).
            runs = [measure(sb, output, action)
                    for _ in range(args.repeat if scenario.startswith("steady") else 1)]
            best = min(runs, key=lambda run: run.get("cpu_s", 0))
            if len(runs) > 1:
                best["cpu_s_runs"] = [run.get("cpu_s") for run in runs]
            rows.append({"units": n, "accounts": args.accounts, "scenario": scenario + label, "api": api,
                         **best, **extra})
            rows[-1]["limit_s"] = physical_limit(rows[-1], latency, keys, args.accounts, args.file_cost)
            log(f"{n} units: {scenario}: " + json.dumps({k: v for k, v in rows[-1].items() if k != "booked"}))
    finally:
        sb.close()
    return rows


def add_ratios(rows: list[dict]) -> None:
    base = {r["units"]: r for r in rows if r["scenario"] == "baseline"}
    for r in rows:
        b = base.get(r["units"])
        if b and r is not b:
            r["wall_ratio"] = round(b["wall_s"] / r["wall_s"], 2) if r["wall_s"] else None
            r["request_ratio"] = round(b["requests"] / r["requests"], 2) if r["requests"] else None


def extrapolate(rows: list[dict], reconcile_hours: float) -> dict | None:
    """Requests/unit/day for a 100-unit account, from the ticks measured at 100 units.

    A steady tick has no booking change, so any GetUnitNonAvailability or SearchUnitSummaries
    it sends is reconcile work (a slice of it, or all of it in full mode): that part is taken
    out of R_s, and the reconcile term is the larger of the nominal cost (every unit plus the
    discovery pages once per period) and that slice times 288. Tokens: one per TTL.
    """
    ours = {(r["units"], r["scenario"]): r for r in rows}
    n = X_UNITS
    if (n, "changes") not in ours:
        return None

    def ops(r: dict, *names: str) -> int:
        return sum(r["by_op"].get(op, 0) for op in names)

    steady, changed, cold = ours[n, "steady"], ours[n, "changes"], ours[n, "cold"]
    r_s, r_5 = steady["requests"] - ops(steady, TOKEN_OP), changed["requests"] - ops(changed, TOKEN_OP)
    in_tick = ops(steady, NONAVAIL_OP, UNITS_OP)
    per_change, pages, reconciles = (r_5 - r_s) / CHANGES, ops(cold, UNITS_OP), 24 / reconcile_hours
    nominal, measured = reconciles * (X_UNITS + pages), X_TICKS_PER_DAY * in_tick
    ttl = ours[n, "baseline"]["token_ttl_s"]
    terms = {"ticks": X_TICKS_PER_DAY * (r_s - in_tick), "changes": X_CHANGES_PER_DAY * per_change,
             "reconcile": max(nominal, measured), "tokens": math.ceil(86400 / ttl)}
    per_day = sum(terms.values())
    return {"R_s": r_s, "R_5": r_5, "reconcile_in_steady_tick": in_tick, "c": per_change,
            "discovery_pages": pages, "reconciles_per_day": reconciles, "reconcile_nominal": nominal,
            "reconcile_measured": measured, "token_ttl_s": ttl, "terms_per_day": terms,
            "requests_per_day": per_day, "per_unit_day": round(per_day / X_UNITS, 2),
            "baseline_per_unit_day": BASELINE_PER_UNIT_DAY}


def fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.1f}x"


def print_report(rows: list[dict], x: dict | None) -> None:
    print(f"{'N':>9}  {'scenario':<19}{'wall s':>8}{'CPU s':>7}{'requests':>10}{'rewritten':>11}"
          f"{'state KB':>10}{'disk KB':>9}{'RSS MB':>8}{'wall x':>8}{'req x':>8}{'limit x':>9}  exit")
    for r in rows:
        rss = f"{r['rss_mb']:.1f}" if "rss_mb" in r else "-"
        cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else "-"
        n = f"{r['accounts']}x{r['units']}" if r.get("accounts", 1) > 1 else str(r["units"])
        limit = f"{r['wall_s'] / r['limit_s']:.2f}" if r.get("limit_s") else "-"
        state = f"{r['state_kb']:.1f}" if "state_kb" in r else "-"
        disk = f"{r['disk_kb']:.0f}" if "disk_kb" in r else "-"
        print(f"{n:>9}  {r['scenario']:<19}{r['wall_s']:>8.2f}{cpu:>7}{r['requests']:>10}"
              f"{r['rewritten']:>11}{state:>10}{disk:>9}{rss:>8}{fmt_ratio(r.get('wall_ratio')):>8}{fmt_ratio(r.get('request_ratio')):>8}"
              f"{limit:>9}  {r.get('exit', '')}")
    if any(r.get("api") == "escapianet" for r in rows):
        for r in rows:
            print(f"  {r['units']} {r['scenario']}: {r['by_op']}")
        return
    print("(wall x = baseline wall / ours, req x = baseline requests / ours, at the same N;\n"
          " limit x = our wall / (requests x latency / requests in flight at once + feeds rewritten x one\n"
          " fsynced file's cost on this disk); 1.00 = the limit; state KB = the state rows the tick added\n"
          " or changed (deleted rows count 0), disk KB = all the CLI wrote to disk (feeds, database pages,\n"
          " journals), from its rusage)")
    if x is None:
        print(f"(no requests/unit/day extrapolation: it needs N={X_UNITS} in --units)")
        return
    t = x["terms_per_day"]
    print(f"\nRequests/unit/day for {X_UNITS} units, {X_CHANGES_PER_DAY} changes/day, {X_TICKS_PER_DAY}"
          f" ticks/day, reconcile every {24 / x['reconciles_per_day']:g} h (from the N={X_UNITS} ticks):")
    print(f"  steady tick R_s = {x['R_s']} requests ({x['reconcile_in_steady_tick']} of them reconcile:"
          f" {NONAVAIL_OP}/{UNITS_OP} with nothing changed)")
    print(f"  per change c = (R_5 - R_s)/{CHANGES} = ({x['R_5']} - {x['R_s']})/{CHANGES} = {x['c']:g}")
    print(f"  reconcile/day = max({x['reconciles_per_day']:g} x ({X_UNITS} units + {x['discovery_pages']}"
          f" discovery pages), {X_TICKS_PER_DAY} x {x['reconcile_in_steady_tick']} as measured)"
          f" = max({x['reconcile_nominal']:g}, {x['reconcile_measured']:g}) = {t['reconcile']:g}")
    print(f"  tokens/day = 86400 / {x['token_ttl_s']} s TTL = {t['tokens']}")
    print(f"  per day = {X_TICKS_PER_DAY} x ({x['R_s']} - {x['reconcile_in_steady_tick']})"
          f" + {X_CHANGES_PER_DAY} x {x['c']:g} + {t['reconcile']:g} + {t['tokens']}"
          f" = {x['requests_per_day']:g}")
    print(f"  = {x['per_unit_day']:g} requests/unit/day vs {BASELINE_PER_UNIT_DAY} for the baseline")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--units", default="10,100,1000", help="unit counts, comma-separated (%(default)s)")
    p.add_argument("--latency", type=float, default=0.1, help="sandbox delay per request, s (%(default)s)")
    p.add_argument("--rss-units", type=int, default=10_000, help="units of the peak-RSS cold sync (0: skip)")
    p.add_argument("--quick", action="store_true", help="N = 10,100 only, no peak-RSS run")
    p.add_argument("--repeat", type=positive, default=3,
                   help="steady ticks run this many times, the least CPU kept (%(default)s)")
    p.add_argument("--api", choices=("hsapi", "escapianet"), default="hsapi",
                   help="escapianet: a batch account's cold, steady and changes ticks with CPU seconds, "
                        "N = 1000 unless --units (10000 on request)")
    p.add_argument("--scenarios", help="which ticks, comma-separated, of baseline, cold, steady, changes, "
                                        "roll (default baseline,cold,steady,changes; escapianet: no "
                                        "baseline; cold always runs first)")
    p.add_argument("--mode", choices=("incremental", "full"), help="the account's mode (default: the CLI's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another account key, e.g. max_concurrency=16 (repeatable)")
    p.add_argument("--deadline", type=int, help="the CLI's deadline_seconds (and read_timeout up to 300 s), "
                                               "e.g. 3600 so that a cold sync of 10,000 calendars completes")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a sync is killed")
    p.add_argument("--accounts", type=positive, default=1, help="accounts reading the sandbox, each all "
                                                               "its units (e.g. --accounts 200 --units 5)")
    p.add_argument("--json", type=Path, default=ROOT / "bench-results.json", help="results file")
    args = p.parse_args(argv)
    if args.quick:
        args.units, args.rss_units = "10,100", 0
    if args.api == "escapianet" and "--units" not in " ".join(argv):
        args.units = "1000"
    if args.api == "escapianet":
        args.rss_units = 0
    args.unit_counts = [int(u) for u in args.units.split(",") if u.strip()]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    account_keys = dict(kv.split("=", 1) for kv in args.set)
    if args.mode:
        account_keys["mode"] = args.mode
    for sig in (signal.SIGTERM, signal.SIGHUP):  # exit through the finally below
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    started, rows = time.perf_counter(), []
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "escapia_ical")],  # noqa: S603
                   check=True, stdout=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory(prefix="escapia-bench-") as tmp:
            args.file_cost, file_cpu = file_cost(Path(tmp))
            log(f"one fsynced feed file costs {args.file_cost * 1000:.2f} ms on this disk (median of 300), "
                f"{file_cpu * 1000:.2f} ms of it CPU (mean)")
            reference = [reference_work()]
            log(f"this machine's speed now: a fixed piece of work (one unit's shape, none of our code) takes "
                f"{reference[0] * 1e6:.0f} µs of CPU")
            for n in args.unit_counts:
                scenarios = ("cold", "steady", "changes") if args.api == "escapianet" \
                    else ("baseline", "cold", "steady", "changes")
                if args.scenarios:
                    wanted = [s.strip() for s in args.scenarios.split(",")]
                    scenarios = (*(["baseline"] if "baseline" in wanted else []), "cold",
                                 *(s for s in wanted if s not in ("", "cold", "baseline")))
                rows += bench(n, args.latency, scenarios, args, Path(tmp), account_keys, api=args.api)
            if args.rss_units and args.accounts > 1:
                log(f"no {args.rss_units}-unit row (peak RSS, steady tick, roll): it runs with --accounts 1 "
                    "only (--units 10000 --accounts N measures N accounts of 10,000)")
            if args.rss_units and args.accounts == 1:  # peak RSS only: latency 0 keeps it short
                rows += bench(args.rss_units, 0.0, ("cold", "steady", "steady-real", "roll"), args, Path(tmp),
                              account_keys, ", latency 0")
            reference.append(reference_work())
            log(f"this machine's speed at the end: {reference[1] * 1e6:.0f} µs (at the start: "
                f"{reference[0] * 1e6:.0f} µs)")
    finally:
        for proc in list(CHILDREN):
            stop(proc, signal.SIGKILL if proc.args[1] == "sync" else signal.SIGINT)
    add_ratios(rows)
    x = extrapolate(rows, float(account_keys.get("reconcile_hours", 6))) if args.api == "hsapi" else None
    print_report(rows, x)
    result = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "latency_s": args.latency,
              "account_keys": account_keys, "cpus": os.cpu_count(), "python": platform.python_version(),
              "bench_wall_s": round(time.perf_counter() - started, 1), "file_cost_s": args.file_cost,
              "file_cpu_s": round(file_cpu, 6), "reference_cpu_s": [round(r, 7) for r in reference],
              "rows": rows, "extrapolation": x}
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"results in {args.json} ({result['bench_wall_s']} s in all)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
