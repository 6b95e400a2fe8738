"""Typed, validated configuration. See ``load_config`` for how a YAML file becomes one.

Everything downstream of this module receives these frozen objects, never raw YAML.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from escapia_ical.errors import ConfigError

from . import checked
from .accounts import (
    LITERAL_SECRET_KEYS,
    Account,
    build_account,
    check_accounts,
    url_problem,
)
from .feeds import DEPRECATED, FeedSettings, feed_settings, feeds_problems
from .positions import KeyPath, Problem, format_path, line_of, load_yaml, one_line
from .profiles import build_profiles, kind_warnings
from .schema import CONFIG_SCHEMA, SECRET_KEYS, kind_of, schema_problems


@dataclass(frozen=True)
class ChannelSettings:
    """Channel fetch tracking: the nginx access log to read (the shipped format or
    ``combined``), after how long without a fetch a channel is reported as silent, after
    how long it is forgotten, and how much of the log one run reads at most."""

    access_log: Path
    silence_hours: float = 24.0
    forget_days: float = 30.0
    max_bytes_per_run: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class StateSettings:
    """Where the state lives (escapia_ical.store): ``sqlite``, files in state_dir, or
    ``postgresql``, the database at ``dsn`` (in ``schema``), which several hosts may share."""

    backend: str = "sqlite"
    dsn: str | None = field(default=None, repr=False)  # may hold a password
    schema: str = "escapia_ical"

    @property
    def where(self) -> str:
        """How messages name the database: host, port and database, never the password."""
        from escapia_ical.store.postgresql import describe_dsn  # only this backend needs psycopg

        return describe_dsn(self.dsn, self.schema)


@dataclass(frozen=True)
class OutputSettings:
    """Where the feeds go: ``disk`` (output_dir) or ``s3`` (``bucket``, ``prefix``,
    ``endpoint_url``, ``region``; feeds/s3.py)."""

    backend: str = "disk"
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    output_dir: Path
    state_dir: Path
    feeds: FeedSettings
    accounts: tuple[Account, ...]
    warnings: tuple[str, ...] = ()
    deadline_seconds: float = 240.0  # work left at this point waits for the next run
    metrics_file: Path | None = None  # node_exporter textfile collector file
    report_html: Path | None = None  # the status page (report/), written after every sync
    healthcheck_url: str | None = field(default=None, repr=False)  # healthchecks.io-style pings
    channels: ChannelSettings | None = None  # channel fetch tracking, when configured
    # Requests in flight at once across every account (accounts are synced side by side).
    max_concurrency_total: int = 32
    state: StateSettings = StateSettings()
    output: OutputSettings = OutputSettings()

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)


def load_config(path: Path | str, environ: Mapping[str, str] | None = None, *,
                secrets: bool = True, remember: bool = False) -> Config:
    """Given a YAML file path (and the environment for ``${VAR}``), return its Config.

    Relative paths in the file resolve against the file's folder, never the cwd. With
    ``secrets`` off (commands that read state only, such as ``status``), keys that hold
    secrets (``SECRET_KEYS``) are not expanded: a monitoring user needs no Escapia
    credentials in its environment. Such a Config must never reach a source.
    ``remember``: a document that validated is remembered in state_dir (config/checked.py).
    Any load skips the schema for a document remembered so (the caller that writes the
    state remembers; the others only read).
    Raise ConfigError listing every problem found, one ``FILE:LINE: key: what`` line each,
    sorted by line, if the file is unreadable, is not YAML, or does not validate.
    """
    filename = str(path)
    environ = _EnvironmentWithCredentials(os.environ if environ is None else environ)
    doc = load_yaml(_read(path, filename), filename)
    if doc.value is None:
        raise ConfigError(f"{filename}:1: (top): the file is empty; expected a mapping "
                          "with output_dir, state_dir and accounts")
    if not isinstance(doc.value, dict):
        raise ConfigError(f"{filename}:{doc.lines[()]}: (top): must be a mapping of keys "
                          f"to values, not {kind_of(doc.value)}")

    problems = list(doc.problems)
    expanded: set[KeyPath] = set()
    failed: set[KeyPath] = set()
    data = _expand_env(doc.value, (), environ, problems, expanded, failed, secrets)

    def is_sensitive(p: KeyPath) -> bool:
        return p in expanded or any(part in SECRET_KEYS for part in p)

    base = Path(path).resolve().parent
    cache = _state_dir_named(data, base) if not problems else None
    document = checked.digest(data, CONFIG_SCHEMA) if cache is not None else None
    schema_checked = not checked.known_valid(cache, document)
    if schema_checked:
        problems += [p for p in schema_problems(data, is_sensitive)
                     if not any(p.path[: len(f)] == f for f in failed)]
    problems += [p for p in check_accounts(data, doc.lines, is_sensitive)
                 if not any(p.path[: len(f)] == f for f in failed)]
    problems += _check_dirs(data, base, is_sensitive)
    problems += feeds_problems(data)
    problems += _state_problems(data.get("state"))
    problems += _output_problems(data.get("output"))
    problems += _bare_variables(doc.value, ())
    hook = data.get("healthcheck_url")
    if (isinstance(hook, str) and ("healthcheck_url",) not in failed and hook.startswith("http://")
            and (message := url_problem(hook, "https://hc-ping.com/<uuid>"))):
        problems.append(Problem(("healthcheck_url",), message))
    if problems:
        raise ConfigError(_render(filename, doc.lines, problems))
    config = _build(Path(path), data, doc.lines, base)
    if remember and cache is not None and schema_checked:
        checked.remember_valid(config.state_dir, document)
    warnings = [w for w in (_permission_warning(path, filename, doc.value),) if w]
    warnings += [f"{filename}:{line_of(doc.lines, key)}: {format_path(key)}: {why}"
                 for key, why in DEPRECATED.items() if _has(data, key)]
    warnings += [f"{filename}:{a.line}: {w}" for a in config.accounts
                 for w in kind_warnings(a.profiles, a.name, a.api)]
    return replace(config, warnings=tuple(warnings)) if warnings else config




_BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _bare_variables(value: Any, path: KeyPath) -> list[Problem]:
    """Return a problem for each value that is only ``$NAME``: taken literally, it would be
    sent to Escapia as the password "$NAME"; ``${NAME}`` is what reads the environment."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _bare_variables(v, path + (k,))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _bare_variables(v, path + (i,))]
    if isinstance(value, str) and (match := _BARE_VAR.fullmatch(value.strip())):
        name = match.group(1)
        return [Problem(path, f"${name} would be taken literally; write ${{{name}}} to read the "
                              "environment variable")]
    return []


def _has(data: Any, path: KeyPath) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _EnvironmentWithCredentials(Mapping[str, str]):
    """The environment, plus systemd credentials: under a unit with ``LoadCredential=NAME:…``
    systemd sets CREDENTIALS_DIRECTORY, and ``${NAME}`` not set in the environment is read
    from the file NAME there (one trailing newline removed)."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        folder = environ.get("CREDENTIALS_DIRECTORY")
        self.folder = Path(folder) if folder else None

    def __getitem__(self, name: str) -> str:
        if name in self.environ:
            return self.environ[name]
        if self.folder is not None:
            try:
                return (self.folder / name).read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError):
                pass
        raise KeyError(name)

    def __iter__(self):
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True


def _read(path: Path | str, filename: str) -> str:
    """Given the config path, return its text. Raise ConfigError if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{filename}: cannot read config: not UTF-8 text") from None


def _expand_env(value: Any, path: KeyPath, environ: Mapping[str, str], problems: list[Problem],
                expanded: set[KeyPath], failed: set[KeyPath], secrets: bool = True) -> Any:
    """Given a plain YAML value, return a copy with ``${VAR}`` replaced in every string.
    Without ``secrets`` (a command reading state only), a string under a secret key, or one
    naming an unset variable other than ``output_dir`` and ``state_dir``, is kept as written.

    Record the paths of expanded strings in ``expanded``, and of strings naming an unset
    variable (or kept as written) in ``failed`` (with one Problem per unset variable).
    """
    if isinstance(value, dict):
        return {k: _expand_env(v, path + (k,), environ, problems, expanded, failed, secrets)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path + (i,), environ, problems, expanded, failed, secrets)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or not _VAR.search(value):
        return value
    expanded.add(path)
    unset = any(name not in environ for name in _VAR.findall(value))
    # The state's DSN is a secret, but every command reads state: it is always expanded.
    if not secrets and path != ("state", "dsn") and (any(part in SECRET_KEYS for part in path)
                        or (unset and path not in (("output_dir",), ("state_dir",)))):
        failed.add(path)  # not validated either: it is never used
        return value
    for name in dict.fromkeys(_VAR.findall(value)):
        if name not in environ:
            problems.append(Problem(path, f"environment variable {name} is not set"))
            failed.add(path)
    return _VAR.sub(lambda m: environ.get(m.group(1), ""), value)


def _state_dir_named(data: dict, base: Path) -> Path | None:
    """The state_dir the document names, before it is validated; None if it names none."""
    value = data.get("state_dir")
    try:
        return _resolve_dir(base, value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _resolve_dir(base: Path, value: str) -> Path:
    """Given the config's folder and a path from it, return the absolute path meant.
    Raise ValueError if the value cannot name a folder here."""
    try:
        path = (base / Path(value).expanduser()).resolve()
        os.fsencode(path)  # a lone surrogate cannot become a file name
    except (ValueError, RuntimeError, OSError, UnicodeError) as exc:
        raise ValueError(f"not a usable path ({exc.__class__.__name__})") from None
    return path


def _check_dirs(data: dict, base: Path, is_sensitive: Callable[[KeyPath], bool]) -> list[Problem]:
    """Given the document, return problems if state_dir and output_dir overlap.

    state_dir holds tokens; anything inside output_dir is served to the world.
    """
    out, state = data.get("output_dir"), data.get("state_dir")
    if not (isinstance(out, str) and out and isinstance(state, str) and state):
        return []
    problems = []
    for key, value in (("output_dir", out), ("state_dir", state)):
        try:
            _resolve_dir(base, value)
        except ValueError as exc:
            problems.append(Problem((key,), str(exc)))
    if problems:
        return problems
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
    page = data.get("report_html")
    try:
        inside = isinstance(page, str) and bool(page) and _resolve_dir(base, page).is_relative_to(out_dir)
    except ValueError as exc:
        return [Problem(("report_html",), str(exc))]
    if inside:
        return [Problem(("report_html",), f"must not be inside output_dir{out_shown}, which is served to the "
                        "world (`escapia-ical report --inside-output-dir` can write it there on purpose)")]
    return []


def _render(filename: str, lines: dict[KeyPath, int], problems: list[Problem]) -> list[str]:
    """Given problems, return their unique ``FILE:LINE: key: what`` lines sorted by line."""
    located = [(p.line or line_of(lines, p.path), i, f"{format_path(p.path)}: {p.message}")
               for i, p in enumerate(problems)]
    texts = [one_line(f"{filename}:{line}: {text}") for line, _, text in sorted(located)]
    return list(dict.fromkeys(texts))


def _build(path: Path, data: dict, lines: dict[KeyPath, int], base: Path) -> Config:
    """Given a validated, expanded document, return the Config it describes."""
    top_http = {k: v for k, v in data.get("http", {}).items() if k != "max_concurrency_total"}
    feeds = feed_settings(data.get("feeds", {}), lines)
    accounts = []
    for i, a in enumerate(data["accounts"]):
        profiles = build_profiles(a.get("profiles"), lines, ("accounts", i, "profiles"), feeds.profiles)
        account = replace(build_account(a, lines[("accounts", i)], top_http), profiles=profiles)
        if account.api == "hsapi":
            account = replace(account, kinds_wanted=any(p.needs_kinds for p in profiles))
        accounts.append(account)
    return Config(
        path=path,
        output_dir=_resolve_dir(base, data["output_dir"]),
        state_dir=_resolve_dir(base, data["state_dir"]),
        feeds=feeds,
        max_concurrency_total=int(data.get("http", {}).get("max_concurrency_total", 32)),
        accounts=tuple(accounts),
        deadline_seconds=float(data.get("deadline_seconds", 240.0)),
        metrics_file=_resolve_dir(base, data["metrics_file"]) if data.get("metrics_file") else None,
        report_html=_resolve_dir(base, data["report_html"]) if data.get("report_html") else None,
        healthcheck_url=data.get("healthcheck_url", "").rstrip("/") or None,
        channels=_channel_settings(data.get("channels"), base),
        state=StateSettings(**data.get("state", {})),
        output=OutputSettings(**data.get("output", {})),
    )


def _state_problems(state: Any) -> list[Problem]:
    """Given the ``state`` mapping, return problems the schema cannot state."""
    if not isinstance(state, dict):
        return []
    if state.get("backend") == "postgresql":
        if not state.get("dsn"):
            return [Problem(("state",), "backend postgresql needs dsn (e.g. dsn: ${ESCAPIA_ICAL_STATE_DSN})")]
        if importlib.util.find_spec("psycopg") is None:
            return [Problem(("state", "backend"), "postgresql needs the PostgreSQL driver: "
                                                  "pip install 'escapia-ical[postgresql]'")]
    elif "dsn" in state or "schema" in state:
        key = "dsn" if "dsn" in state else "schema"
        return [Problem(("state", key), "is only read with backend: postgresql")]
    return []


def _output_problems(output: Any) -> list[Problem]:
    """Given the ``output`` mapping, return problems the schema cannot state."""
    if not isinstance(output, dict):
        return []
    if output.get("backend") == "s3":
        if not output.get("bucket"):
            return [Problem(("output",), "backend s3 needs bucket")]
        if importlib.util.find_spec("boto3") is None:
            return [Problem(("output", "backend"), "s3 needs boto3: pip install 'escapia-ical[s3]'")]
    else:
        extra = sorted(set(output) - {"backend"})
        if extra:
            return [Problem(("output", extra[0]), "is only read with backend: s3")]
    return []


def _channel_settings(data: dict | None, base: Path) -> ChannelSettings | None:
    """Given the validated ``channels`` mapping (or None), return its settings."""
    if data is None:
        return None
    return ChannelSettings(**{**data, "access_log": _resolve_dir(base, data["access_log"])})


def _permission_warning(path: Path | str, filename: str, raw: dict) -> str | None:
    """Given the unexpanded document, return a warning if it holds a literal secret
    (client_secret, password) while the file is readable by group or others; else None."""
    literal = any(isinstance(a, dict) and _VAR.sub("", str(a.get(key, "")))
                  for a in raw.get("accounts") or [] for key in LITERAL_SECRET_KEYS)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if literal and mode & 0o077:
        return (f"{filename}: holds secrets but is readable by group/others "
                f"(mode {mode & 0o777:04o}); chmod 600 it or use ${{VAR}}")
    return None
