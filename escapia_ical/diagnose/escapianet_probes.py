"""EscapiaNET probes: what each calendar call covers, the DailyAvailability letters, whether
holds depend on ShowHold(s), and whether per-unit and batch calendars agree.

Requests (at most 3 + 4 x SAMPLE_UNITS): UnitSearch; the batch with and without ShowHold;
UnitCalendarAvail with and without ShowHolds for a sample of units, preferring units with
blocked nights.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from escapia_ical.diagnose.common import SAMPLE_UNITS, attempt, failed
from escapia_ical.diagnose.escapianet_calls import UnitAnswer, batch_calendars, unit_calendar
from escapia_ical.diagnose.report import Finding
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span
from escapia_ical.model import FeedWindow
from escapia_ical.sources.escapianet import EscapianetSource
from escapia_ical.sources.escapianet_decode import KNOWN_CODES

Calendars = dict[str, UnitAnswer | SourceError]


def probe_escapianet(source: EscapianetSource, window: FeedWindow, today: dt.date) -> dict[str, Finding]:
    """Return the EscapiaNET findings. Raise SourceError if not even the units can be
    listed (AuthError for refused credentials): then nothing else can be learnt."""
    units = [u.id for u in source.list_units()]
    findings = {"units": Finding("ok", f"{len(units)} units distributed", data={"count": len(units)}) if units
                else Finding("warning", "no unit is distributed to this partner: enable units in Escapia's "
                                        "Network Partners", data={"count": 0})}
    if not units:
        nothing = "skipped: no unit to look at"
        return {**findings, **{key: Finding("skipped", nothing) for key in
                               ("calendar_span", "letters", "holds", "unit_vs_batch")}}
    whole: Span = (window.start, window.end)
    future: Span = (max(today, window.start), window.end)
    batch = attempt(lambda: batch_calendars(source, future, show_hold=True))
    batch_plain = attempt(lambda: batch_calendars(source, future, show_hold=False))
    codes = source.account.blocked_codes
    busy = [u for u, a in batch[0].items() if a.blocked(codes)] if not isinstance(batch, SourceError) else []
    sample = (busy + [u for u in units if u not in busy])[:SAMPLE_UNITS]
    per_unit: Calendars = {u: attempt(lambda u=u: unit_calendar(source, u, whole, show_holds=True))
                           for u in sample}
    per_unit_plain: Calendars = {u: attempt(lambda u=u: unit_calendar(source, u, whole, show_holds=False))
                                 for u in sample}
    batched: Calendars | SourceError = batch if isinstance(batch, SourceError) else dict(batch[0])
    batched_plain = batch_plain if isinstance(batch_plain, SourceError) else dict(batch_plain[0])
    findings["calendar_span"] = _span(whole, future, per_unit, batched)
    findings["letters"] = _letters(per_unit, batched)
    findings["holds"] = _holds(codes, per_unit, per_unit_plain, batched, batched_plain)
    findings["unit_vs_batch"] = _agreement(codes, per_unit, batched)
    failures = [(u, e) for u, e in [*per_unit.items(), *per_unit_plain.items()] if isinstance(e, SourceError)]
    if failures:
        findings["calendar_span"].details.append(f"UnitCalendarAvail failed {len(failures)} times "
                                                 f"(first: {failures[0][1]})")
    if not isinstance(batch, SourceError) and batch[1]:
        findings["unit_vs_batch"].details.append(f"{batch[1]} units came twice in one batch answer")
    return findings


def _answers(calendars: Calendars) -> dict[str, UnitAnswer]:
    return {u: a for u, a in calendars.items() if isinstance(a, UnitAnswer)}


def _first_error(calendars: Calendars) -> SourceError | None:
    return next((a for a in calendars.values() if isinstance(a, SourceError)), None)


def _coverage(asked: Span, answers: dict[str, UnitAnswer], future: Span) -> dict:
    covered = [a.covered() for a in answers.values()]
    flat = [s for c in covered for s in c]
    short = {u: spans.subtract([future], a.covered()) for u, a in answers.items()}
    short = {u: missing for u, missing in short.items() if missing}
    lengths = [len(s.daily) for a in answers.values() for s in a.segments]
    readings = Counter(s.end_date_reading for a in answers.values() for s in a.segments)
    return {"asked": {"start": asked[0].isoformat(), "end": asked[1].isoformat()},
            "answers": len(answers),
            "covered": ({"start": min(s[0] for s in flat).isoformat(),
                         "end": max(s[1] for s in flat).isoformat()} if flat else None),
            "string_days": {"min": min(lengths), "max": max(lengths)} if lengths else None,
            "end_date_reads_as": dict(readings),
            "answers_short_of_future": len(short),
            "future_nights_missing": sum(spans.count(m) for m in short.values()),
            "first_short": next((f"unit {u}: {spans.describe(m)}" for u, m in short.items()), None)}


def _describe_coverage(name: str, figures: dict) -> str:
    asked, covered, days = figures["asked"], figures["covered"], figures["string_days"]
    text = f"{name}: asked {asked['start']} .. {asked['end']}"
    if covered is None:
        return f"{text}; no calendar came back"
    lengths = f"{days['min']}" + (f"-{days['max']}" if days["max"] != days["min"] else "")
    text += (f"; {figures['answers']} answers cover {covered['start']} .. {covered['end']} "
             f"(strings of {lengths} days)")
    readings = sorted(figures["end_date_reads_as"].items())
    if readings:
        text += "; EndDate reads as " + ", ".join(f"{k} ({n})" for k, n in readings)
    return text


def _span(whole: Span, future: Span, per_unit: Calendars, batched: Calendars | SourceError) -> Finding:
    data = {"per_unit": _coverage(whole, _answers(per_unit), future)}
    details = [_describe_coverage("UnitCalendarAvail", data["per_unit"])]
    if isinstance(batched, SourceError):
        details.append(f"UnitCalendarAvailBatch: {batched}")
        data["batch"] = None
    else:
        data["batch"] = _coverage(future, _answers(batched), future)
        details.append(_describe_coverage("UnitCalendarAvailBatch", data["batch"]))
    short = [(name, f) for name, f in data.items() if f and f["answers_short_of_future"]]
    if short:
        name, figures = short[0]
        summary = (f"{figures['answers_short_of_future']} {name.replace('_', ' ')} answers cover fewer "
                   f"future nights than asked ({figures['first_short']}): those nights are published as "
                   "blocked; lower feeds.future_days to what Escapia serves")
        return Finding("warning", summary, details, data)
    if _first_error(per_unit) and not data["per_unit"]["answers"]:
        return Finding("error", f"UnitCalendarAvail: {_first_error(per_unit)}", details, data)
    return Finding("ok", "every calendar answer covers the future nights asked", details, data)


def _letters(per_unit: Calendars, batched: Calendars | SourceError) -> Finding:
    seen = {"per_unit": sum((a.letters() for a in _answers(per_unit).values()), Counter())}
    if not isinstance(batched, SourceError):
        seen["batch"] = sum((a.letters() for a in _answers(batched).values()), Counter())
    total = sum(seen.values(), Counter())
    if not total:
        return Finding("error", "no DailyAvailability string could be read", data={"outside_AUIO": {}})
    outside = {letter: n for letter, n in sorted(total.items()) if letter not in KNOWN_CODES}
    shown = ", ".join(f"{letter} {n}" for letter, n in sorted(total.items()))
    data = {name: dict(sorted(c.items())) for name, c in seen.items()}
    data["outside_AUIO"] = outside
    if outside:
        listed = ", ".join(f"{letter!r} x{n}" for letter, n in outside.items())
        return Finding("warning", f"letters outside AUIO: {listed} (read as blocked)", [f"seen: {shown}"],
                       data)
    return Finding("ok", f"seen: {shown}; none outside AUIO", data=data)


def _hold_difference(codes: str, shown: dict[str, UnitAnswer], plain: dict[str, UnitAnswer]) -> dict:
    only_with = only_without = 0
    differing = []
    for unit in sorted(set(shown) & set(plain)):
        both = spans.intersect(shown[unit].covered(), plain[unit].covered())
        with_holds = spans.intersect(shown[unit].blocked(codes), both)
        without = spans.intersect(plain[unit].blocked(codes), both)
        extra = spans.count(spans.subtract(with_holds, without))
        missing = spans.count(spans.subtract(without, with_holds))
        only_with, only_without = only_with + extra, only_without + missing
        if extra or missing:
            differing.append(unit)
    return {"units": len(set(shown) & set(plain)), "nights_only_with": only_with,
            "nights_only_without": only_without, "units_differing": len(differing)}


def _holds(codes: str, per_unit: Calendars, per_unit_plain: Calendars, batched: Calendars | SourceError,
           batched_plain: Calendars | SourceError) -> Finding:
    data = {"per_unit": _hold_difference(codes, _answers(per_unit), _answers(per_unit_plain))}
    if not isinstance(batched, SourceError) and not isinstance(batched_plain, SourceError):
        data["batch"] = _hold_difference(codes, _answers(batched), _answers(batched_plain))
    compared = sum(d["units"] for d in data.values())
    if not compared:
        error = _first_error(per_unit_plain) or _first_error(per_unit)
        error = error or SourceError("no calendar to compare")
        return failed(error, "comparing calendars with and without holds")
    details = [f"{name.replace('_', ' ')}: {d['nights_only_with']} nights blocked only with holds asked, "
               f"{d['nights_only_without']} only without "
               f"({d['units_differing']} of {d['units']} units differ)"
               for name, d in data.items()]
    if any(d["nights_only_without"] for d in data.values()):
        data["verdict"] = "unexpected"
        return Finding("warning", "some nights are blocked only when holds are NOT asked for", details, data)
    if any(d["nights_only_with"] for d in data.values()):
        data["verdict"] = "holds_need_asking"
        return Finding("info", "holds show only when asked for (ShowHold/ShowHolds): they must be asked for",
                       details, data)
    data["verdict"] = "no_difference"
    return Finding("info", "no difference on the sample: holds are shown either way, or there are none",
                   details, data)


def _agreement(codes: str, per_unit: Calendars, batched: Calendars | SourceError) -> Finding:
    if isinstance(batched, SourceError):
        return failed(batched, "UnitCalendarAvailBatch")
    mine, theirs = _answers(per_unit), _answers(batched)
    compared = sorted(set(mine) & set(theirs))
    if not compared:
        return Finding("info", "no unit has both a per-unit and a batch calendar to compare",
                       data={"verdict": "not_compared", "units_compared": 0})
    nights = differing = 0
    first: list[str] = []
    for unit in compared:
        both = spans.intersect(mine[unit].covered(), theirs[unit].covered())
        nights += spans.count(both)
        a = spans.intersect(mine[unit].blocked(codes), both)
        b = spans.intersect(theirs[unit].blocked(codes), both)
        differ = spans.normalize(spans.subtract(a, b) + spans.subtract(b, a))
        if differ:
            differing += spans.count(differ)
            first.append(f"unit {unit}: {spans.describe(differ)}")
    data = {"verdict": "differ" if first else "agree", "units_compared": len(compared),
            "nights_compared": nights, "nights_differing": differing, "units_differing": len(first)}
    if first:
        return Finding("warning", f"{differing} nights differ on {len(first)} of {len(compared)} units "
                                  "(blocked in one answer, free in the other)", first[:3], data)
    return Finding("ok", f"agree on all {nights} nights both cover ({len(compared)} units)", data=data)
