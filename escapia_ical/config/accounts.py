"""Account settings: their types, the checks the schema cannot express, and building them.

``config.py`` re-exports the public names; import them from there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .imports import ImportSettings, build_imports, import_problems
from .positions import KeyPath, Problem, line_of
from .profiles import Profile
from .schema import ACCOUNT_SCHEMAS

HSAPI_DEFAULT_BASE_URL = "https://hsapi.escapia.com/dragomanadapter"
ESCAPIANET_DEFAULT_BASE_URL = "https://api.escapia.com"
DEFAULT_BASE_URLS = {"hsapi": HSAPI_DEFAULT_BASE_URL, "escapianet": ESCAPIANET_DEFAULT_BASE_URL}
# Keys whose literal (not ${VAR}) value in a group/other-readable file deserves a warning.
LITERAL_SECRET_KEYS = ("client_secret", "password", "feed_token_secret")


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and the retry policy of one account's HTTP client (seconds)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_attempts: int = 4  # attempts in all, the first included
    retry_initial_wait: float = 1.0
    retry_max_wait: float = 60.0
    max_concurrency: int = 8  # requests in flight at once, per account
    max_requests_per_minute: int = 0  # client-side limit per account; 0: none
    total_timeout: float = 60.0  # one request from connect to its last byte, retries not included


@dataclass(frozen=True)
class FeedTokens:
    """Secret feed URLs: each file is named ``<unit>-<token>.ics`` with a token derived
    from ``secret``; after a change of secret the old names live on for ``grace_days``."""

    secret: str = field(repr=False)
    grace_days: int = 7


@dataclass(frozen=True)
class HsapiAccount:
    name: str
    pmcid: str
    client_id: str
    client_secret: str = field(repr=False)
    base_url: str = HSAPI_DEFAULT_BASE_URL
    units: Literal["all"] | tuple[str, ...] = "all"
    # How GetUnitNonAvailability's endDate is read: "exclusive" = the checkout day,
    # "inclusive" = the last blocked night (API-NOTES.md marks this UNCERTAIN).
    end_date: Literal["exclusive", "inclusive"] = "exclusive"
    # incremental: follow GetReservationChanges and refetch only changed units, with a full
    # reconcile of every unit spread over reconcile_hours; full: every unit every run.
    mode: Literal["incremental", "full"] = "incremental"
    reconcile_hours: float = 6.0
    # Without the SearchWorkOrders grant (403) work orders show only when their unit is
    # fetched: the reconcile then comes round every work_orders_fallback_hours instead.
    work_orders_fallback_hours: float = 1.0
    # Whether a feed profile of this account needs the kinds of blocks: then the kind index
    # is refreshed account-wide once per reconcile_hours (sync/kind_index.py). Set by the
    # config loader, not a key of its own.
    kinds_wanted: bool = False
    http: HttpPolicy = HttpPolicy()
    api: Literal["hsapi"] = "hsapi"
    line: int = 0  # where the account is declared, for messages
    feed_tokens: FeedTokens | None = None
    profiles: tuple[Profile, ...] = ()  # its named feed profiles (config/profiles.py)
    imports: ImportSettings | None = None  # channel calendars watched (config/imports.py)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret, *((self.feed_tokens.secret,) if self.feed_tokens else ()),
                *(self.imports.urls if self.imports else ()))


@dataclass(frozen=True)
class EscapianetAccount:
    """An EscapiaNET (SOAP) account. Units are identified by their unit code."""

    name: str
    username: str
    password: str = field(repr=False)
    base_url: str = ESCAPIANET_DEFAULT_BASE_URL
    property_manager_code: str | None = None
    units: Literal["all"] | tuple[str, ...] = "all"
    # batch: one UnitCalendarAvailBatch call for all units; per_unit: UnitSearch plus one
    # UnitCalendarAvail call per unit.
    calendar_mode: Literal["batch", "per_unit"] = "batch"
    # DailyAvailability characters that mean "night blocked" (unknown ones are blocked too).
    blocked_codes: str = "UO"
    # incremental: quiet ticks (one summary batch; only changed units fetched) with a full
    # tick every reconcile_hours (1 h: a hold or work order that does not move a unit's
    # LastUpdated shows within the hour); full: every unit every run. See sync/quiet.py.
    mode: Literal["incremental", "full"] = "incremental"
    reconcile_hours: float = 1.0
    http: HttpPolicy = HttpPolicy()
    api: Literal["escapianet"] = "escapianet"
    line: int = 0
    feed_tokens: FeedTokens | None = None
    profiles: tuple[Profile, ...] = ()  # its named feed profiles (config/profiles.py)
    imports: ImportSettings | None = None  # channel calendars watched (config/imports.py)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password, *((self.feed_tokens.secret,) if self.feed_tokens else ()),
                *(self.imports.urls if self.imports else ()))


Account = HsapiAccount | EscapianetAccount


def check_accounts(data: dict, lines: dict[KeyPath, int],
                   is_sensitive: Callable[[KeyPath], bool]) -> list[Problem]:
    """Given the document, return problems the schema cannot see: names, URLs, unit ids.

    Names must be unique across all accounts, whatever their api. URLs and units are only
    checked for accounts of a known api: for the others, the api is the one problem.
    """
    accounts = data.get("accounts")
    if not isinstance(accounts, list):
        return []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for i, account in enumerate(accounts):
        if not isinstance(account, dict):
            continue
        where = ("accounts", i)
        name = account.get("name")
        if isinstance(name, str) and name in first_line:
            shown = "" if is_sensitive(where + ("name",)) else f" '{name}'"
            problems.append(Problem(where + ("name",), f"duplicate account name{shown} "
                                    f"(first at line {first_line[name]})"))
        elif isinstance(name, str):
            first_line[name] = line_of(lines, where + ("name",))
        api = account.get("api")
        if not isinstance(api, str) or api not in ACCOUNT_SCHEMAS:
            continue
        url = account.get("base_url")
        if isinstance(url, str) and url and (message := url_problem(url, DEFAULT_BASE_URLS[api])):
            problems.append(Problem(where + ("base_url",), message))
        problems += _unit_problems(account.get("units"), where, lines, is_sensitive)
        problems += import_problems(account.get("imports"), where + ("imports",), api)
    return problems


def _unit_problems(units: Any, where: KeyPath, lines: dict[KeyPath, int],
                   is_sensitive: Callable[[KeyPath], bool]) -> list[Problem]:
    """Given an account's units value, return a problem for each repeated unit id."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for j, unit in enumerate(units if isinstance(units, list) else []):
        if not isinstance(unit, (str, int)) or isinstance(unit, bool):
            continue
        unit_id, unit_path = as_id(unit), where + ("units", j)
        if unit_id in seen:
            shown = "" if is_sensitive(unit_path) else f" '{unit_id}'"
            problems.append(Problem(unit_path, f"duplicate unit id{shown} "
                                    f"(first at line {seen[unit_id]})"))
        else:
            seen[unit_id] = line_of(lines, unit_path)
    return problems


def url_problem(url: str, example: str) -> str | None:
    """Given a base_url, return what is wrong with it, or None if it is usable."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host, e.g. " + example
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return "plain http is only allowed for loopback; use https"
    return None


def _is_loopback(host: str) -> bool:
    """Given a URL's host name, return whether it names this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def as_id(value: str | int | float) -> str:
    """Given an id written as a YAML string or integer, return it as a string."""
    return str(int(value)) if isinstance(value, float) else str(value)


def typed(defaults: object, values: Mapping[str, Any]) -> dict[str, Any]:
    """Given a dataclass instance of defaults and valid values, cast each to its field's type."""
    return {key: type(getattr(defaults, key))(value) for key, value in values.items()}


def build_account(a: dict, line: int, top_http: Mapping[str, Any]) -> Account:
    """Given one validated, expanded account mapping, return the Account it describes."""
    units = a.get("units", "all")
    common = {
        "name": a["name"],
        "base_url": a.get("base_url", DEFAULT_BASE_URLS[a["api"]]).rstrip("/"),
        "units": "all" if units == "all" else tuple(as_id(u) for u in units),
        "http": HttpPolicy(**typed(HttpPolicy(), {**top_http, **a.get("http", {})})),
        "api": a["api"],
        "line": line,
        "feed_tokens": FeedTokens(a["feed_token_secret"], a.get("feed_token_grace_days", 7))
        if a.get("feed_tokens") else None,
        "imports": build_imports(a.get("imports")),
    }
    if a["api"] == "escapianet":
        code = a.get("property_manager_code")
        return EscapianetAccount(
            username=a["username"],
            password=a["password"],
            property_manager_code=None if code is None else as_id(code),
            calendar_mode=a.get("calendar_mode", "batch"),
            blocked_codes=a.get("blocked_codes", "UO"),
            mode=a.get("mode", "incremental"),
            reconcile_hours=float(a.get("reconcile_hours", 1.0)),
            **common,
        )
    return HsapiAccount(
        pmcid=as_id(a["pmcid"]),
        client_id=a["client_id"],
        client_secret=a["client_secret"],
        end_date=a.get("end_date", "exclusive"),
        mode=a.get("mode", "incremental"),
        reconcile_hours=float(a.get("reconcile_hours", 6.0)),
        work_orders_fallback_hours=float(a.get("work_orders_fallback_hours", 1.0)),
        **common,
    )
