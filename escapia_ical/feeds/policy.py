"""The publish policy: what a unit's feed may show, given what it showed and what Escapia
answers now. This module decides; the sync only carries out its verdicts.

Channels read a missing event as a cancellation, so a night freed by mistake invites a
double booking, while a night blocked too many only costs a booking. Per unit and run:

1. **Nights, not counts.** A unit's *loss* is the set of future nights its feed blocked that
   the answer frees. Nights the answer adds elsewhere do not offset it.
2. **Coverage.** A future night of the feed window that the answer did not cover is
   published as blocked, never as free. Fetches ask for a margin of nights past the
   window's end (sync/margin.py): those nights are never judged here — not lost, not
   uncovered — only remembered (``Verdict.through``) for the daily roll.
3. **Explained losses publish at once**: the change feed shows the stay cancelled, moved or
   shortened, or an independent view (Escapia's reservations for HSAPI; the other calendar
   operation for EscapiaNET) shows the nights free.
4. **Unexplained losses are held**: the feed keeps those nights (and gains the answer's new
   ones: blocking more never double-books). A hold is *confirmed* — the loss published —
   once answers in runs at least ``confirm_minutes`` apart agree, every answer in between
   agreed, and no independent view says the nights are still booked (then they stay held
   until the views agree, or an operator accepts).
5. **The breaker.** When one run finds at least ``breaker_units`` units, and at least
   ``breaker_share`` of the units it fetched, losing nights without explanation, no
   unexplained loss of that account is published, confirmed or not, until ``escapia-ical
   accept``.

Workers call :meth:`PublishPolicy.assess` (it may ask the independent view, i.e. the
network); the publishing thread calls :meth:`PublishPolicy.decide` for each unit and
:meth:`PublishPolicy.finish` once all units of the account are in.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from escapia_ical.config import FeedSettings
from escapia_ical.errors import SourceError
from escapia_ical.feeds import spans
from escapia_ical.feeds.holds import Breaker, Hold, HoldBook
from escapia_ical.feeds.spans import Span
from escapia_ical.model import BlockedRange, Explanation, FeedWindow, UnitCalendar

log = logging.getLogger(__name__)

MAX_LOOKUPS = 25  # independent-view requests per account and run: a mass glitch costs no more


@dataclass(frozen=True)
class Assessment:
    """What one answer would change, made by a worker thread."""

    unit_id: str
    answer: UnitCalendar
    previous: tuple[BlockedRange, ...]  # the ranges the feed showed (known blocks only)
    uncovered: list[Span]  # future window nights the answer did not cover
    lost: list[Span]  # future nights the feed blocked that the answer frees
    shown: list[Span] = field(default_factory=list)  # of `lost`: the change feed shows them freed
    free: list[Span] = field(default_factory=list)  # of `lost`: the independent view shows them free
    booked: list[Span] = field(default_factory=list)  # of `lost`: the independent view shows them booked
    view: str = ""  # the independent view asked
    note: str = ""  # why the independent view could not be asked
    shown_end: dt.date | None = None  # the end of the window the feed showed (None: this one's)


@dataclass
class Verdict:
    """What to publish for one unit. ``kind``: ``published`` (nothing lost), ``explained``,
    ``accepted``, ``confirmed`` (the loss is published), ``held`` (the lost nights are kept)
    or ``pending`` (waiting for the account's breaker, see ``finish``)."""

    unit_id: str
    ranges: list[BlockedRange]
    kind: str
    kept: list[Span] = field(default_factory=list)
    uncovered: list[Span] = field(default_factory=list)
    message: str = ""
    # Of `uncovered`: the nights no earlier answer knew as blocked. Only these are
    # placeholders for the next run; a booking the feed knew stays known through a gap.
    unknown: list[Span] = field(default_factory=list)
    # The day after the last night the answer covers without a gap from the window's end on
    # (the margin asked past it, sync/margin.py); the window's end if it covers none.
    through: dt.date | None = None

    @property
    def held(self) -> bool:
        return self.kind == "held"


class PublishPolicy:
    """The policy of one account for one run.

    How strong an explanation is matters: the change feed *shows* a stay cancelled, moved
    or shortened — such a loss is published at once, whatever else happens. An independent
    view that merely shows the nights free (no reservation there, the other calendar
    operation says available) may be wrong the same way as the answer (a permission
    glitch empties both): such a loss is published at once only when the account is
    otherwise healthy; it counts towards the breaker like an unexplained one.
    """

    def __init__(self, account: str, settings: FeedSettings, book: HoldBook, today: dt.date,
                 window: FeedWindow, now: dt.datetime, evidence: dict[str, list[Span]] | None = None):
        self.account, self.settings, self.book = account, settings, book
        self.window, self.now = window, now
        self.future = window.future(today)
        self.evidence = evidence or {}  # unit -> nights the change feed shows freed this run
        # Read by worker threads: a snapshot, so they never see the book change under them.
        self._accepted = {u: list(h.accepted.nights) for u, h in book.holds.items() if h.accepted}
        self._held_before = set(book.holds)
        self._lookups_left = MAX_LOOKUPS
        self._lock = threading.Lock()
        self._losing: set[str] = set()  # units whose loss this run is not shown by the change feed
        self._new_losses: set[str] = set()  # ... of which not held before: what the breaker counts
        self._pending: dict[str, tuple[Verdict, Verdict]] = {}  # unit -> (publish, held)
        self._messages: dict[str, str] = {}  # unit -> why it is held (not by the breaker)

    # -- worker threads ---------------------------------------------------------------

    def assess(self, unit_id: str, previous: Sequence[BlockedRange] | None, answer: UnitCalendar,
               explain: Callable[[list[Span]], Explanation] | None = None,
               shown_end: dt.date | None = None) -> Assessment:
        """Return what ``answer`` would free of ``previous`` (the ranges the feed showed, None
        if it showed nothing we can read) and what explains it. ``explain`` asks the
        source's independent view about the nights the change feed does not explain.
        ``shown_end`` is the end of the window the feed was last rendered for (None: this
        run's): stored nights past it (the margin, sync/margin.py) were never shown, so
        freeing them is no loss."""
        uncovered = spans.subtract([self.future], answer.covered)
        before = self._before(previous or (), shown_end)
        # Nothing shown before (a new feed: every unit of a cold sync), nothing to lose, so the
        # answer's ranges need not be joined (that join was 0.05 ms of assess's 0.07 a unit).
        lost = spans.subtract(before, spans.union(((r.start, r.end) for r in answer.ranges), uncovered)) \
            if before else []
        if not lost:
            return Assessment(unit_id, answer, tuple(previous or ()), uncovered, lost, shown_end=shown_end)
        by_feed = spans.intersect(lost, self.evidence.get(unit_id, ()))
        rest = spans.subtract(lost, spans.union(by_feed, self._accepted.get(unit_id, ())))
        free, booked, view, note = [], [], "", ""
        if rest and explain is not None:
            free, booked, view, note = self._ask(explain, rest)
        return Assessment(unit_id, answer, tuple(previous or ()), uncovered, lost, by_feed, free,
                          booked, view, note, shown_end)

    def _before(self, previous: Sequence[BlockedRange], shown_end: dt.date | None) -> list[Span]:
        """The future nights of ``previous`` the feed showed (up to ``shown_end``, if given)."""
        end = self.future[1] if shown_end is None else min(self.future[1], shown_end)
        return spans.clip(((r.start, r.end) for r in previous), self.future[0], end)

    def _ask(self, explain: Callable[[list[Span]], Explanation],
             nights: list[Span]) -> tuple[list[Span], list[Span], str, str]:
        with self._lock:
            if self._lookups_left <= 0:
                return [], [], "", f"not checked: more than {MAX_LOOKUPS} units lost nights in this run"
            self._lookups_left -= 1
        try:
            answer = explain(nights)
        except SourceError as exc:  # (at most MAX_LOOKUPS such failures per run)
            return [], [], "", f"could not be checked: {exc}"
        return (spans.intersect(nights, answer.free), spans.intersect(nights, answer.booked),
                answer.view, "")

    # -- the publishing thread --------------------------------------------------------

    def decide(self, a: Assessment) -> Verdict:
        """Return the verdict for one assessed unit, and record its hold."""
        verdict = self._decide(a)
        unknown = spans.subtract(a.uncovered, ((r.start, r.end) for r in a.previous))
        through = spans.covered_from(a.answer.covered, self.window.end)
        for each in (verdict, *self._pending.get(a.unit_id, ())):
            each.unknown, each.through = unknown, through
        return verdict

    def _decide(self, a: Assessment) -> Verdict:
        base = list(a.answer.ranges) + [BlockedRange(s, e) for s, e in a.uncovered]
        hold = self.book.holds.get(a.unit_id)
        accepted = hold.accepted.nights if hold and hold.accepted else []
        before = self._before(a.previous, a.shown_end)
        # While held, the feed took in what the (untrusted) answers added: once a view shows
        # those nights free they may go again, breaker or not (a shifted calendar's nights).
        gained = spans.subtract(before, hold.known) if hold and hold.known is not None else []
        settled = spans.union(a.shown, accepted, spans.intersect(a.free, gained))  # freed whatever else
        suspect = spans.subtract(a.lost, settled)
        if not suspect:
            self.book.holds.pop(a.unit_id, None)
            return self._released(a, base, hold, accepted)
        self._losing.add(a.unit_id)
        if a.unit_id not in self._held_before:
            self._new_losses.add(a.unit_id)
        agrees = hold is not None and self._clip(hold.lost) == self._clip(suspect)
        # Once a view said "still booked", time alone never confirms the loss: a later run
        # in which the view cannot be asked must not publish it.
        booked = bool(spans.intersect(suspect, a.booked)) or (agrees and hold is not None and hold.booked)
        since = hold.since if agrees and hold else self.now
        # An acceptance is used by the first answer judged after it; it never carries over.
        new = Hold(since, self.now, suspect, booked, breaker=self.book.breaker is not None,
                   known=hold.known if hold and hold.known is not None else before)
        self.book.holds[a.unit_id] = new
        # Old and new, minus only what is settled: a held feed loses no other night, not
        # even a past one (its answer is not trusted), and keeps its stays' boundaries.
        kept = [BlockedRange(s, e) for r in a.previous
                for s, e in spans.subtract([(r.start, r.end)], settled)]
        held = Verdict(a.unit_id, base + kept, "held", suspect, a.uncovered, self._held_message(a, new))
        unexplained = spans.subtract(suspect, a.free)
        if not unexplained and not new.breaker:  # the view shows every night free: the breaker decides
            explained = Verdict(a.unit_id, base, "explained", [], a.uncovered,
                                f"{self._nights(a.lost)} freed, as {self._by(a)} show(s); publishing")
            self._pending[a.unit_id] = (explained, held)
            return Verdict(a.unit_id, [], "pending")
        if agrees and not booked and not new.breaker and self.now - since >= self._confirm:
            confirmed = Verdict(a.unit_id, base, "confirmed", [], a.uncovered,
                                f"{self._nights(suspect)} freed without explanation; answers agreed "
                                f"since {_clock(since)}: publishing")
            self._pending[a.unit_id] = (confirmed, held)
            return Verdict(a.unit_id, [], "pending")
        return held

    def finish(self, fetched: int) -> dict[str, Verdict]:
        """Resolve the pending verdicts once every unit of the account was decided: trip the
        breaker when too many units newly lost nights that the change feed does not show
        freed (``fetched`` units were fetched this run). Return unit -> final verdict for
        the pending units."""
        losing, settings = len(self._new_losses), self.settings
        if (self.book.breaker is None and losing >= settings.breaker_units
                and losing >= settings.breaker_share * fetched):
            self.book.breaker = Breaker(self.now, losing, fetched)
            log.error("%s: %d of %d units fetched would lose nights without explanation: the breaker "
                      "holds every such loss until `escapia-ical accept --account %s`",
                      self.account, losing, fetched, self.account)
        resolved = {}
        for unit, (publish, held) in self._pending.items():
            if self.book.breaker is None:
                self.book.holds.pop(unit, None)
                resolved[unit] = publish
            else:
                resolved[unit] = held
        if self.book.breaker is not None:
            for unit in self._losing:
                self.book.holds[unit].breaker = True
            if not any(h.breaker for h in self.book.holds.values()):
                log.info("%s: the breaker is released: no loss is held any more", self.account)
                self.book.breaker = None
        return resolved

    def held_message(self, unit_id: str) -> str:
        """Return the operator's line for a unit held this run (after :meth:`finish`)."""
        hold = self.book.holds[unit_id]
        if hold.breaker:
            breaker = self.book.breaker
            why = (f"{breaker.units} of {breaker.fetched} units lost nights at once, "
                   f"{_clock(breaker.since)}" if breaker else "many units lost nights at once")
            return (f"held by the account breaker ({why}): Escapia's calendar would free "
                    f"{self._nights(hold.lost)}; `escapia-ical accept --account {self.account}` publishes it")
        return self._messages.get(unit_id, "held")

    # -- helpers ----------------------------------------------------------------------

    @property
    def _confirm(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.confirm_minutes)

    def _clip(self, nights: list[Span]) -> list[Span]:
        return spans.clip(nights, *self.future)

    def _released(self, a: Assessment, base: list[BlockedRange], hold: Hold | None,
                  accepted: list[Span]) -> Verdict:
        if not a.lost:
            return Verdict(a.unit_id, base, "published", [], a.uncovered)
        if hold and hold.accepted and spans.subtract(a.lost, a.shown):
            message = (f"{self._nights(a.lost)} freed: accepted by {hold.accepted.by} at "
                       f"{_clock(hold.accepted.at)}; publishing")
            return Verdict(a.unit_id, base, "accepted", [], a.uncovered, message)
        message = f"{self._nights(a.lost)} freed, as {self._by(a)} show(s); publishing"
        return Verdict(a.unit_id, base, "explained", [], a.uncovered, message)

    @staticmethod
    def _by(a: Assessment) -> str:
        return " and ".join(w for w, s in (("the change feed", a.shown), (a.view, a.free)) if s)

    def _held_message(self, a: Assessment, hold: Hold) -> str:
        nights = self._nights(hold.lost)
        if hold.booked:
            view = a.view or "an independent view"
            text = (f"held: Escapia's calendar would free {nights}, but {view} still show(s) "
                    f"them booked; kept until both agree (`escapia-ical accept --account {self.account} "
                    f"--unit {a.unit_id}` publishes it)")
        else:
            why = f" ({a.view or 'the independent view'} {a.note})" if a.note else ""
            text = (f"held: Escapia's calendar would free {nights} without explanation{why}; kept until "
                    f"answers agree for {self.settings.confirm_minutes:g} min "
                    f"(first seen {_clock(hold.since)})")
        self._messages[a.unit_id] = text
        return text

    @staticmethod
    def _nights(nights: list[Span]) -> str:
        n = spans.count(nights)
        return f"{n} future night{'s' if n != 1 else ''} ({spans.describe(nights)})"


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
