"""Feed profiles in the configuration: ``feeds.profiles`` and, per account, ``profiles``.

A profile is a second (third, ...) feed of every unit, made from the same fetch: which kinds
of blocks it shows, turnover or prep nights around them, its wording, its window, how it
writes DTEND, its UID domain. The unnamed default profile is the feed at
``output/<account>/<unit>.ics``; a named one lives at ``output/<account>/<name>/<unit>.ics``.
An account's ``profiles`` override the global ones by name (``name: false`` switches one
off for that account). What a profile does with blocks is feeds/profiles.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from escapia_ical.feeds.kinds import KINDS

from .positions import KeyPath, Problem

NAME_PATTERN = "^[a-z0-9][a-z0-9-]*$"  # as schema.NAME_PATTERN (not imported: schema imports this)

# A SUMMARY: RFC 5545 TEXT may hold no control character but HTAB (no escape can carry
# one), and a lone surrogate cannot be written as UTF-8 at all.
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": 200, "allOf": [
    {"pattern": r"\S", "x-messages": {"pattern": "must not be empty"}},
    {"pattern": "^[^\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]*$",
     "x-messages": {"pattern": "must not contain control characters (line breaks included)"}},
]}
_HOST = {"type": "string", "pattern": r"^[A-Za-z0-9.-]+$",
         "x-messages": {"pattern": "must be hostname-like (letters, digits, dots, hyphens)"}}

PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "include": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"enum": list(KINDS)}},
        "buffer_before_days": {"type": "integer", "minimum": 0, "maximum": 30},
        "buffer_after_days": {"type": "integer", "minimum": 0, "maximum": 30},
        "summary": {
            "type": ["string", "object"],
            "if": {"type": "string"},
            "then": TEXT_SCHEMA,
            "else": {"additionalProperties": False, "minProperties": 1,
                     "properties": {kind: TEXT_SCHEMA for kind in KINDS},
                     "x-messages": {"minProperties": "must name at least one kind"}},
        },
        "past_days": {"type": "integer", "minimum": 0, "maximum": 366},
        "future_days": {"type": "integer", "minimum": 1, "maximum": 1100},
        "dtend": {"enum": ["checkout", "last_night"]},
        "uid_domain": _HOST,
    },
}
PROFILES_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": PROFILE_SCHEMA}
# Per account: a profile, or false to switch a global one off for this account.
ACCOUNT_PROFILES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"if": {"type": "boolean"}, "then": {"const": False,
                             "x-messages": {"const": "must be a profile mapping, or false to switch "
                                                     "the global profile off for this account"}},
                             "else": PROFILE_SCHEMA},
}


@dataclass(frozen=True)
class Profile:
    """One named feed profile, as configured (None: the ``feeds`` setting applies)."""

    name: str
    include: tuple[str, ...] = KINDS
    buffer_before_days: int = 0
    buffer_after_days: int = 0
    summary: str | tuple[tuple[str, str], ...] | None = None  # text, or (kind, text) pairs
    past_days: int | None = None
    future_days: int | None = None
    dtend: Literal["checkout", "last_night"] = "checkout"
    uid_domain: str | None = None
    line: int = 0

    @property
    def needs_kinds(self) -> bool:
        """Whether what this profile shows depends on the kinds of blocks."""
        return set(self.include) != set(KINDS) or isinstance(self.summary, tuple)

    def summary_for(self, kind: str, default: str) -> str:
        if isinstance(self.summary, tuple):
            return dict(self.summary).get(kind, default)
        return self.summary or default


def build_profiles(data: Mapping[str, Any] | None, lines: Mapping[KeyPath, int], where: KeyPath,
                   inherited: tuple[Profile, ...] = ()) -> tuple[Profile, ...]:
    """Given a validated ``profiles`` mapping at ``where``, return the profiles it defines on
    top of ``inherited`` (an account's override the global ones by name; ``false`` removes
    one), sorted by name."""
    profiles = {p.name: p for p in inherited}
    for name, value in (data or {}).items():
        if value is False:
            profiles.pop(name, None)
            continue
        summary = value.get("summary")
        profiles[name] = Profile(
            name=name,
            include=tuple(k for k in KINDS if k in value.get("include", KINDS)),
            buffer_before_days=int(value.get("buffer_before_days", 0)),
            buffer_after_days=int(value.get("buffer_after_days", 0)),
            summary=tuple(sorted(summary.items())) if isinstance(summary, dict) else summary,
            past_days=None if value.get("past_days") is None else int(value["past_days"]),
            future_days=None if value.get("future_days") is None else int(value["future_days"]),
            dtend=value.get("dtend", "checkout"),
            uid_domain=value.get("uid_domain"),
            line=lines.get(where + (name,), 0),
        )
    return tuple(sorted(profiles.values(), key=lambda p: p.name))


def profile_problems(data: Any, feeds: Mapping[str, Any], defaults: Mapping[str, int],
                     where: KeyPath) -> list[Problem]:
    """Given a ``profiles`` mapping (checked against the schema separately), return what the
    schema cannot say: names that cannot be folders, windows wider than the fetched one."""
    if not isinstance(data, dict):
        return []
    problems = []
    limits = {key: feeds.get(key, defaults[key]) if isinstance(feeds, dict) else defaults[key]
              for key in ("past_days", "future_days")}
    for name, value in data.items():
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or len(name) > 63:
            problems.append(Problem(where + (name,), "profile names must match [a-z0-9][a-z0-9-]* "
                                    "(lowercase letters, digits, hyphens; at most 63): they name a folder"))
            continue
        if not isinstance(value, dict):
            continue
        for key, limit in limits.items():
            days = value.get(key)
            if _count(days) and _count(limit) and days > limit:
                problems.append(Problem(where + (name, key), f"{days} is beyond feeds.{key} ({limit}): a "
                                        f"profile shows only what is fetched; raise feeds.{key} too"))
    return problems


def _count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def kind_warnings(profiles: tuple[Profile, ...], account_name: str, api: str) -> list[str]:
    """Return a warning for each profile that filters by kind on an EscapiaNET account,
    where every night is ``other`` (its calendar letters carry no kind)."""
    if api != "escapianet":
        return []
    return [f"account {account_name}: profile {p.name} includes {', '.join(p.include)}: EscapiaNET "
            "calendars say no kind, so every night of this account is 'other'"
            + ("" if "other" in p.include else " and its feeds stay empty")
            for p in profiles if set(p.include) != set(KINDS)]
