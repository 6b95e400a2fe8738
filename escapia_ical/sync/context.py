"""What one sync run shares and reports: options, context, per-unit and per-account outcomes."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escapia_ical.config import Account, Config
from escapia_ical.errors import EscapiaIcalError
from escapia_ical.feeds.publish import OpenFolders
from escapia_ical.model import FeedWindow

log = logging.getLogger("escapia_ical.sync")


FeedStamps = dict[str, dict[str, Any]]  # file name -> {"unit", "digest", "dtstamp", "ranges", ...}

@dataclass(slots=True)  # one per unit, all held until the status is written
class UnitOutcome:
    account: str
    unit_id: str
    path: Path | None = None
    error: str | None = None
    events: int = 0
    rewritten: bool = False  # with --dry-run: would be rewritten
    verdict: str = ""  # the publish policy's verdict (feeds/policy.py Verdict.kind), if fetched
    uncovered: list = field(default_factory=list)  # nights Escapia's answer did not cover
    generation: int = 0  # the name generation of path (feeds/rotation.py UnitNames)
    profiles_rewritten: int = 0  # profile feeds (re)written (with --dry-run: would be)

    @property
    def held(self) -> bool:
        return self.verdict == "held"

@dataclass
class AccountResult:
    name: str
    error: str | None = None
    units: list[UnitOutcome] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    holds: dict[str, dict] = field(default_factory=dict)  # unit -> its held loss (feeds/holds.py Hold)
    breaker: dict | None = None  # the account breaker, if tripped
    fetched: int = 0  # units whose calendar was fetched this run
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, status)
    retired: dict[str, str] = field(default_factory=dict)  # unit -> since when (feeds/lifecycle.py)
    imports: Any = None  # what its channel imports did (imports/watch.py ImportsResult), if any
    watching: bool = False  # whether it has imports configured (they may not have run)

@dataclass
class SyncReport:
    accounts: dict[str, AccountResult] = field(default_factory=dict)
    unknown_units: list[str] = field(default_factory=list)  # --unit ids no account lists
    skipped: dict[str, Any] = field(default_factory=dict)  # account -> the lock holder (LockHolder)

    @property
    def failed_units(self) -> list[UnitOutcome]:
        return [u for a in self.accounts.values() for u in a.units if u.error]

    @property
    def failed_accounts(self) -> list[AccountResult]:
        return [a for a in self.accounts.values() if a.error]

    @property
    def stuck(self) -> dict[str, Any]:
        """Accounts skipped because a run that may be stuck holds their lock."""
        return {name: holder for name, holder in self.skipped.items() if holder.stuck}

    @property
    def ok(self) -> bool:
        return not (self.failed_units or self.failed_accounts or self.unknown_units
                    or any(a.imports is not None and a.imports.failing for a in self.accounts.values()))

class Progress:
    """Told about each unit as it is done; the CLI shows a bar only on a terminal."""

    def begin(self, account: str, total: int) -> None: ...
    def step(self) -> None: ...
    def end(self) -> None: ...

@dataclass
class SyncOptions:
    accounts: Sequence[str] = ()  # empty: all
    units: Sequence[str] = ()  # empty: all the account publishes
    dry_run: bool = False
    force: bool = False
    full: bool = False  # fetch every unit, whatever the change feed says
    today: dt.date | None = None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    sleep: Callable[[float], None] | None = None
    progress: Progress = field(default_factory=Progress)

@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares."""

    config: Config
    options: SyncOptions
    today: dt.date
    window: FeedWindow
    deadline: float = float("inf")  # time.monotonic() after which no unit is fetched
    # account -> the feed folders written but not yet fsynced (feeds/publish.py sync_folders)
    unsynced: dict[str, set[Path]] = field(default_factory=dict)
    # account -> its feed folders, each opened once a run (feeds/publish.py OpenFolders)
    folders: dict[str, OpenFolders] = field(default_factory=dict)

def describe(exc: Exception, account: Account) -> str:
    """Return the one-line message of a failure, with the account's secrets masked (a
    server may echo them back). Unexpected exceptions are named by their class."""
    if isinstance(exc, EscapiaIcalError):
        message = str(exc)
    else:
        message = f"unexpected {exc.__class__.__name__}: {exc} (a bug; -vv shows the traceback)"
    for secret in account.secrets:
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())

def fail(outcome: UnitOutcome, exc: Exception, account: Account) -> None:
    outcome.error = describe(exc, account)
    log.error("%s/%s: %s", outcome.account, outcome.unit_id, outcome.error)
    log.debug("%s/%s: details", outcome.account, outcome.unit_id,
              exc_info=not isinstance(exc, EscapiaIcalError))
