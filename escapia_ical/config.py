"""Typed, validated configuration. See ``load_config`` for how a YAML file becomes one.

Everything downstream of this module receives these frozen objects, never raw YAML.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .config_schema import SECRET_KEYS, kind_of, schema_problems
from .errors import ConfigError
from .yaml_positions import Path_, Problem, format_path, line_of, load_yaml

HSAPI_DEFAULT_BASE_URL = "https://hsapi.escapia.com/dragomanadapter"


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and the retry policy of one account's HTTP client (seconds)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_attempts: int = 4  # attempts in all, the first included
    retry_initial_wait: float = 1.0
    retry_max_wait: float = 60.0


@dataclass(frozen=True)
class FeedSettings:
    summary: str = "Not available"
    past_days: int = 7
    future_days: int = 730
    uid_domain: str = "escapia-ical"


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
    http: HttpPolicy = HttpPolicy()
    api: Literal["hsapi"] = "hsapi"
    line: int = 0  # where the account is declared, for messages

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret,)


Account = HsapiAccount


@dataclass(frozen=True)
class Config:
    path: Path
    output_dir: Path
    state_dir: Path
    feeds: FeedSettings
    accounts: tuple[Account, ...]
    warnings: tuple[str, ...] = ()

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Given a YAML file path (and the environment for ``${VAR}``), return its Config.

    Relative paths in the file resolve against the file's folder, never the cwd.
    Raise ConfigError listing every problem found, one ``FILE:LINE: key: what`` line each,
    sorted by line, if the file is unreadable, is not YAML, or does not validate.
    """
    filename = str(path)
    environ = os.environ if environ is None else environ
    doc = load_yaml(_read(path, filename), filename)
    if doc.value is None:
        raise ConfigError(f"{filename}:1: (top): the file is empty; expected a mapping "
                          "with output_dir, state_dir and accounts")
    if not isinstance(doc.value, dict):
        raise ConfigError(f"{filename}:{doc.lines[()]}: (top): must be a mapping of keys "
                          f"to values, not {kind_of(doc.value)}")

    problems = list(doc.problems)
    expanded: set[Path_] = set()
    failed: set[Path_] = set()
    data = _expand_env(doc.value, (), environ, problems, expanded, failed)

    def is_sensitive(p: Path_) -> bool:
        return p in expanded or any(part in SECRET_KEYS for part in p)

    problems += [p for p in schema_problems(data, is_sensitive)
                 if not any(p.path[: len(f)] == f for f in failed)]
    base = Path(path).resolve().parent
    problems += _check_accounts(data, doc.lines, is_sensitive)
    problems += _check_dirs(data, base, is_sensitive)
    if problems:
        raise ConfigError(_render(filename, doc.lines, problems))
    config = _build(Path(path), data, doc.lines, base)
    warning = _permission_warning(path, filename, doc.value)
    return replace(config, warnings=(warning,)) if warning else config


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _read(path: Path | str, filename: str) -> str:
    """Given the config path, return its text. Raise ConfigError if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{filename}: cannot read config: not UTF-8 text") from None


def _expand_env(value: Any, path: Path_, environ: Mapping[str, str], problems: list[Problem],
                expanded: set[Path_], failed: set[Path_]) -> Any:
    """Given a plain YAML value, return a copy with ``${VAR}`` replaced in every string.

    Record the paths of expanded strings in ``expanded``, and of strings naming an unset
    variable in ``failed`` (with one Problem per unset variable).
    """
    if isinstance(value, dict):
        return {k: _expand_env(v, path + (k,), environ, problems, expanded, failed)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path + (i,), environ, problems, expanded, failed)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or not _VAR.search(value):
        return value
    expanded.add(path)
    for name in dict.fromkeys(_VAR.findall(value)):
        if name not in environ:
            problems.append(Problem(path, f"environment variable {name} is not set"))
            failed.add(path)
    return _VAR.sub(lambda m: environ.get(m.group(1), ""), value)


def _check_accounts(data: dict, lines: dict[Path_, int],
                    is_sensitive: Callable[[Path_], bool]) -> list[Problem]:
    """Given the document, return problems the schema cannot see: names, URLs, unit ids."""
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
        url = account.get("base_url")
        if isinstance(url, str) and url and (message := _url_problem(url)):
            problems.append(Problem(where + ("base_url",), message))
        units = account.get("units")
        seen: dict[str, int] = {}
        for j, unit in enumerate(units if isinstance(units, list) else []):
            if not isinstance(unit, (str, int)) or isinstance(unit, bool):
                continue
            unit_id, unit_path = _as_id(unit), where + ("units", j)
            if unit_id in seen:
                shown = "" if is_sensitive(unit_path) else f" '{unit_id}'"
                problems.append(Problem(unit_path, f"duplicate unit id{shown} "
                                        f"(first at line {seen[unit_id]})"))
            else:
                seen[unit_id] = line_of(lines, unit_path)
    return problems


def _url_problem(url: str) -> str | None:
    """Given a base_url, return what is wrong with it, or None if it is usable."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host, e.g. " + HSAPI_DEFAULT_BASE_URL
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


def _resolve_dir(base: Path, value: str) -> Path:
    """Given the config's folder and a path from it, return the absolute path meant."""
    return (base / Path(value).expanduser()).resolve()


def _check_dirs(data: dict, base: Path, is_sensitive: Callable[[Path_], bool]) -> list[Problem]:
    """Given the document, return problems if state_dir and output_dir overlap.

    state_dir holds tokens; anything inside output_dir is served to the world.
    """
    out, state = data.get("output_dir"), data.get("state_dir")
    if not (isinstance(out, str) and out and isinstance(state, str) and state):
        return []
    out_dir, state_dir = _resolve_dir(base, out), _resolve_dir(base, state)
    hidden = is_sensitive(("output_dir",)) or is_sensitive(("state_dir",))
    out_shown, state_shown = ("", "") if hidden else (f" ({out_dir})", f" ({state_dir})")
    if state_dir == out_dir:
        return [Problem(("state_dir",), f"must not be the same folder as output_dir{out_shown}: "
                        "its tokens would be published")]
    if state_dir.is_relative_to(out_dir):
        return [Problem(("state_dir",), f"must not be inside output_dir{out_shown}: "
                        "its tokens would be published")]
    if out_dir.is_relative_to(state_dir):
        return [Problem(("output_dir",), f"must not be inside state_dir{state_shown}")]
    return []


def _render(filename: str, lines: dict[Path_, int], problems: list[Problem]) -> list[str]:
    """Given problems, return their unique ``FILE:LINE: key: what`` lines sorted by line."""
    located = [(p.line or line_of(lines, p.path), i, f"{format_path(p.path)}: {p.message}")
               for i, p in enumerate(problems)]
    texts = [f"{filename}:{line}: {text}" for line, _, text in sorted(located)]
    return list(dict.fromkeys(texts))


def _as_id(value: str | int | float) -> str:
    """Given an id written as a YAML string or integer, return it as a string."""
    return str(int(value)) if isinstance(value, float) else str(value)


def _typed(defaults: object, values: Mapping[str, Any]) -> dict[str, Any]:
    """Given a dataclass instance of defaults and valid values, cast each to its field's type."""
    return {key: type(getattr(defaults, key))(value) for key, value in values.items()}


def _build(path: Path, data: dict, lines: dict[Path_, int], base: Path) -> Config:
    """Given a validated, expanded document, return the Config it describes."""
    top_http = data.get("http", {})
    accounts = []
    for i, a in enumerate(data["accounts"]):
        units = a.get("units", "all")
        accounts.append(HsapiAccount(
            name=a["name"],
            pmcid=_as_id(a["pmcid"]),
            client_id=a["client_id"],
            client_secret=a["client_secret"],
            base_url=a.get("base_url", HSAPI_DEFAULT_BASE_URL).rstrip("/"),
            units="all" if units == "all" else tuple(_as_id(u) for u in units),
            end_date=a.get("end_date", "exclusive"),
            http=HttpPolicy(**_typed(HttpPolicy(), {**top_http, **a.get("http", {})})),
            api=a["api"],
            line=lines[("accounts", i)],
        ))
    return Config(
        path=path,
        output_dir=_resolve_dir(base, data["output_dir"]),
        state_dir=_resolve_dir(base, data["state_dir"]),
        feeds=FeedSettings(**_typed(FeedSettings(), data.get("feeds", {}))),
        accounts=tuple(accounts),
    )


def _permission_warning(path: Path | str, filename: str, raw: dict) -> str | None:
    """Given the unexpanded document, return a warning if it holds a literal client_secret
    while the file is readable by group or others; otherwise None."""
    literal = any(isinstance(a, dict) and _VAR.sub("", str(a.get("client_secret", "")))
                  for a in raw.get("accounts") or [])
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if literal and mode & 0o077:
        return (f"{filename}: holds secrets but is readable by group/others "
                f"(mode {mode & 0o777:04o}); chmod 600 it or use ${{VAR}}")
    return None
