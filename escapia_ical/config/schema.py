"""The JSON Schema of the configuration file, and its errors turned into operator prose.

The schema is the single place that says which keys exist and what types they take.
An ``x-messages`` entry in a (sub)schema overrides the generic message of a keyword,
e.g. to explain a regular expression. An account is validated against the schema of its
``api`` (``ACCOUNT_SCHEMAS``). Checks that need more than one value at once (duplicate
names, paths, URLs) live in ``load.py`` and ``accounts.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .imports import IMPORTS_SCHEMA
from .positions import KeyPath, Problem
from .profiles import ACCOUNT_PROFILES_SCHEMA, PROFILES_SCHEMA, TEXT_SCHEMA

if TYPE_CHECKING:
    from jsonschema import ValidationError

NAME_PATTERN = "^[a-z0-9][a-z0-9-]*$"
# Keys whose values are never shown in messages.
SECRET_KEYS = frozenset({"client_id", "client_secret", "username", "password", "feed_token_secret",
                         "healthcheck_url", "url", "dsn"})  # url: a channel's calendar export link (imports)

_TIMEOUT = {"type": "number", "exclusiveMinimum": 0}
_WAIT = {"type": "number", "minimum": 0}
_NON_EMPTY = {"type": "string", "minLength": 1}
_ID = {"type": ["string", "integer"], "minLength": 1, "minimum": 0}

HTTP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        # Bounded: a wait of 1e400 seconds is no wait a run can make (and overflows timers).
        "connect_timeout": {**_TIMEOUT, "maximum": 300},
        "read_timeout": {**_TIMEOUT, "maximum": 3600},
        "total_timeout": {**_TIMEOUT, "maximum": 3600},
        "retry_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "retry_initial_wait": {**_WAIT, "maximum": 3600},
        "retry_max_wait": {**_WAIT, "maximum": 3600},
        "max_concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
        "max_requests_per_minute": {"type": "integer", "minimum": 0},
    },
}

# The top-level http: every account's defaults, plus the bound of the whole run.
TOP_HTTP_SCHEMA: dict[str, Any] = {
    **HTTP_SCHEMA,
    "properties": {**HTTP_SCHEMA["properties"],
                   "max_concurrency_total": {"type": "integer", "minimum": 1, "maximum": 256}},
}

FEEDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "summary": TEXT_SCHEMA,
        "past_days": {"type": "integer", "minimum": 0, "maximum": 366},
        "shrink_guard": {"type": "number", "minimum": 0, "maximum": 1},  # deprecated, ignored
        "confirm_minutes": {"type": "number", "minimum": 0, "maximum": 10080},
        "retire_grace_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "breaker_units": {"type": "integer", "minimum": 1},
        "breaker_share": {"type": "number", "minimum": 0, "maximum": 1},
        "future_days": {"type": "integer", "minimum": 1, "maximum": 1100},
        "uid_domain": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9.-]+$",
            "x-messages": {"pattern": "must be hostname-like (letters, digits, dots, hyphens)"},
        },
        # The public URL output_dir is served at: `feeds` prints full URLs, and its host is
        # the default uid_domain.
        "base_url": {"type": "string", "pattern": "^https?://[^/\\s?#]+[^\\s?#]*$",
                     "x-messages": {"pattern": "must be an http(s) URL without query, e.g. "
                                               "https://calendars.example.com/feeds"}},
        "profiles": PROFILES_SCHEMA,
    },
}

# Channel fetch tracking (escapia_ical/channels): which channel fetched which feed, from
# the nginx access log.
CHANNELS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["access_log"],
    "properties": {
        "access_log": _NON_EMPTY,
        "silence_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 8760},
        "forget_days": {"type": "number", "exclusiveMinimum": 0, "maximum": 3650},
        "max_bytes_per_run": {"type": "integer", "minimum": 65536},
    },
}

_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "pattern": NAME_PATTERN,
    "x-messages": {"pattern": "must match [a-z0-9][a-z0-9-]* (lowercase letters, digits, hyphens)"},
}
_UNITS = {
    "type": ["string", "array"],
    "x-messages": {"type": "must be \"all\" or a list of unit ids"},
    "if": {"type": "string"},
    "then": {"const": "all", "x-messages": {"const": "must be \"all\" or a list of unit ids"}},
    "else": {"minItems": 1, "items": _ID},
}

# Secret feed URLs: the same keys for every api.
_FEED_TOKEN_KEYS: dict[str, Any] = {
    "feed_tokens": {"type": "boolean"},
    "feed_token_secret": {"type": "string", "minLength": 16,
                          "x-messages": {"minLength": "must be at least 16 characters"}},
    "feed_token_grace_days": {"type": "integer", "minimum": 0, "maximum": 365},
}
_FEED_TOKENS_NEED_A_SECRET: dict[str, Any] = {
    "if": {"required": ["feed_tokens"], "properties": {"feed_tokens": {"const": True}}},
    "then": {"required": ["feed_token_secret"]},
}

HSAPI_ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "api", "pmcid", "client_id", "client_secret"],
    "properties": {
        "name": _NAME,
        "api": {"const": "hsapi"},
        "base_url": _NON_EMPTY,
        "pmcid": _ID,
        "client_id": _NON_EMPTY,
        "client_secret": _NON_EMPTY,
        "units": _UNITS,
        "end_date": {"enum": ["exclusive", "inclusive"]},
        "mode": {"enum": ["incremental", "full"]},
        "reconcile_hours": {"type": "number", "minimum": 0.25, "maximum": 168},
        "work_orders_fallback_hours": {"type": "number", "minimum": 0.25, "maximum": 168},
        "http": HTTP_SCHEMA,
        "profiles": ACCOUNT_PROFILES_SCHEMA,
        "imports": IMPORTS_SCHEMA,
        **_FEED_TOKEN_KEYS,
    },
    **_FEED_TOKENS_NEED_A_SECRET,
}

ESCAPIANET_ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "api", "username", "password"],
    "properties": {
        "name": _NAME,
        "api": {"const": "escapianet"},
        "base_url": _NON_EMPTY,
        "username": _NON_EMPTY,
        "password": _NON_EMPTY,
        "property_manager_code": _ID,
        "units": _UNITS,
        "calendar_mode": {"enum": ["batch", "per_unit"]},
        "mode": {"enum": ["incremental", "full"]},
        "reconcile_hours": {"type": "number", "minimum": 0.25, "maximum": 168},
        # DailyAvailability letters that mean "night blocked"; "A" means available.
        "blocked_codes": {
            "type": "string",
            "minLength": 1,
            "allOf": [
                {"pattern": "^[A-Z]*$",
                 "x-messages": {"pattern": "must be uppercase letters A-Z, e.g. UO"}},
                {"pattern": "^[^A]*$", "x-messages": {"pattern": "must not contain A (available)"}},
                {"pattern": r"^(?!.*(.).*\1)", "x-messages": {"pattern": "must not repeat a letter"}},
            ],
        },
        "http": HTTP_SCHEMA,
        "profiles": ACCOUNT_PROFILES_SCHEMA,
        "imports": IMPORTS_SCHEMA,
        **_FEED_TOKEN_KEYS,
    },
    **_FEED_TOKENS_NEED_A_SECRET,
}

# Each account is checked against the schema of its api, and only once its api is known:
# a missing or unknown api is then the one problem reported for that account.
ACCOUNT_SCHEMAS: dict[str, dict[str, Any]] = {
    "hsapi": HSAPI_ACCOUNT_SCHEMA,
    "escapianet": ESCAPIANET_ACCOUNT_SCHEMA,
}
ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api"],
    "properties": {"api": {"enum": list(ACCOUNT_SCHEMAS)}},
    "allOf": [
        {
            "if": {"type": "object", "required": ["api"], "properties": {"api": {"const": api}}},
            "then": schema,
        }
        for api, schema in ACCOUNT_SCHEMAS.items()
    ],
}

# Where the state lives (escapia_ical.store): SQLite files in state_dir (the default), or one
# PostgreSQL database that several hosts share. The DSN is a secret (it may hold a password).
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["backend"],
    "properties": {
        "backend": {"enum": ["sqlite", "postgresql"]},
        "dsn": _NON_EMPTY,
        "schema": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$",
                   "x-messages": {"pattern": "must be a plain lower-case SQL name (a-z, 0-9, _)"}},
    },
}

# Where the feeds go (feeds/publish.py): files in output_dir (the default), or objects on
# S3-compatible storage (feeds/s3.py; credentials from boto3's standard chain, never here).
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["backend"],
    "properties": {
        "backend": {"enum": ["disk", "s3"]},
        "bucket": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                   "x-messages": {"pattern": "must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"}},
        "prefix": {"type": "string", "pattern": "^[^\\\\]*$"},
        "endpoint_url": {"type": "string", "pattern": "^https?://[^/\\s]+",
                         "x-messages": {"pattern": "must be an http(s) URL"}},
        "region": _NON_EMPTY,
    },
}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "escapia-ical configuration",
    "type": "object",
    "additionalProperties": False,
    "required": ["output_dir", "state_dir", "accounts"],
    "properties": {
        "output_dir": _NON_EMPTY,
        "state_dir": _NON_EMPTY,
        "http": TOP_HTTP_SCHEMA,
        "feeds": FEEDS_SCHEMA,
        "metrics_file": _NON_EMPTY,
        "report_html": _NON_EMPTY,
        "deadline_seconds": {"type": "number", "minimum": 10, "maximum": 3600},
        "healthcheck_url": {"type": "string", "pattern": "^https?://[^/\\s]+",
                            "x-messages": {"pattern": "must be an http(s) URL"}},
        "accounts": {"type": "array", "minItems": 1, "items": ACCOUNT_SCHEMA},
        "channels": CHANNELS_SCHEMA,
        "state": STATE_SCHEMA,
        "output": OUTPUT_SCHEMA,
    },
}

@functools.cache
def _validator() -> Any:
    """Made at its first use: importing jsonschema is 0.07 CPU s (config/checked.py)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(CONFIG_SCHEMA)


def schema_problems(data: Any, is_sensitive: Callable[[KeyPath], bool]) -> list[Problem]:
    """Given the (env-expanded) document, return one Problem per schema violation.

    ``is_sensitive(path)`` says whether the value at a path must never be shown.
    An unexpected key becomes its own Problem at its own path ("unknown key").
    """
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        path: KeyPath = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            problems += [Problem(path + (k,), "unknown key") for k in error.instance if k not in known]
        elif error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            problems += [Problem(path, f"missing required key '{k}'{_choices(error.schema, k)}")
                         for k in missing]
        else:
            problems.append(Problem(path, _describe(error, is_sensitive(path))))
    return problems


def _choices(schema: dict[str, Any], key: str) -> str:
    """Given an object schema and one of its keys, return " (one of: ...)" if the key takes
    one of a fixed set of values, else ""."""
    values = schema.get("properties", {}).get(key, {}).get("enum")
    return f" (one of: {', '.join(map(str, values))})" if values else ""


def _describe(error: ValidationError, sensitive: bool) -> str:
    """Given one jsonschema error, return what is wrong, in words (never a secret value)."""
    override = error.schema.get("x-messages", {}).get(error.validator)
    if override:
        return override
    kind, limit, value = error.validator, error.validator_value, error.instance
    got = "" if sensitive else f" (got {value!r})"
    if kind == "type":
        expected = [limit] if isinstance(limit, str) else limit
        return f"must be {' or '.join(map(_a, expected))} (got {_a(_type_of(value))})"
    if kind == "minLength" and limit == 1:
        return "must not be empty"
    if kind == "minItems" and limit == 1:
        return "must not be an empty list"
    match kind:
        case "minLength":
            return f"must be at least {limit} characters long"
        case "maxLength":
            return f"must be at most {limit} characters long"
        case "minimum":
            return f"must be at least {limit}{got}"
        case "maximum":
            return f"must be at most {limit}{got}"
        case "exclusiveMinimum":
            return f"must be greater than {limit}{got}"
        case "pattern":
            return f"must match {limit}"
        case "enum":
            return f"must be one of: {', '.join(map(str, limit))}{got}"
        case "const":
            return f"must be {limit!r}{got}"
        case "minItems":
            return f"must have at least {limit} items"
    return "is invalid" if sensitive else error.message


def kind_of(value: Any) -> str:
    """Given a Python value from YAML, return what it is in operator words ("a list")."""
    return _a(_type_of(value))


def _type_of(value: Any) -> str:
    """Given a Python value from YAML, return its JSON Schema type name."""
    if value is None:
        return "null"
    for name, types in (("boolean", bool), ("integer", int), ("number", float),
                        ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, types):
            return name
    return type(value).__name__  # e.g. a YAML date or binary


def _a(type_name: str) -> str:
    """Given a JSON Schema type name, return it in operator words with an article."""
    words = {
        "string": "a string", "integer": "an integer", "number": "a number",
        "boolean": "true or false", "array": "a list", "object": "a mapping",
        "null": "nothing",
    }
    return words.get(type_name, f"a {type_name}")
