"""A configuration that validated is not checked against the schema again while it stays
the same (escapia_ical/config/checked.py); anything else is validated as before."""

from __future__ import annotations

import datetime as dt
import math
import os
import stat
import subprocess
import sys

import pytest

from escapia_ical.config import checked, load_config, schema
from escapia_ical.errors import ConfigError

CONFIG = """\
output_dir: ${{OUT}}
state_dir: state
deadline_seconds: {deadline}
accounts:
  - name: main
    api: hsapi
    pmcid: "1"
    client_id: the-id
    client_secret: ${{SECRET}}
"""


ENV = {"SECRET": "s", "OUT": "out"}
OTHER = {"SECRET": "s", "OUT": "out2"}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A config file, its state_dir, and a count of the schema validations."""
    (tmp_path / "state").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(deadline=60))
    calls = []
    real = schema.schema_problems

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("escapia_ical.config.load.schema_problems", counted)
    return path, tmp_path / "state" / checked.FILENAME, calls


def test_a_document_that_validated_is_not_validated_again_while_it_stays_the_same(world):
    path, remembered, calls = world
    first = load_config(path, ENV, remember=True)
    assert len(calls) == 1 and stat.S_IMODE(remembered.stat().st_mode) == 0o600
    assert load_config(path, ENV, remember=True) == first and len(calls) == 1
    assert load_config(path, ENV, secrets=False) and len(calls) == 1  # read by any load
    load_config(path, OTHER, remember=True)  # a variable it reads changed
    path.write_text(CONFIG.format(deadline=61))  # the file changed
    load_config(path, OTHER, remember=True)
    assert len(calls) == 3
    path.write_text(CONFIG.format(deadline=62))
    load_config(path, OTHER)  # not asked to remember: validated, nothing kept
    load_config(path, OTHER)
    assert len(calls) == 5


def test_secrets_are_not_in_the_digest_only_what_the_schema_checks_of_them(world):
    """A copy of state_dir must not let anyone test guesses of a password offline."""
    path, remembered, calls = world
    load_config(path, {**ENV, "SECRET": "summer2026"}, remember=True)
    digest = remembered.read_text()
    load_config(path, {**ENV, "SECRET": "winter2027"}, remember=True)  # as long, as plain
    assert remembered.read_text() == digest and len(calls) == 1
    for shape in ("", "a" * 16, "https://x.example/ping"):  # what the schema tells apart
        assert checked.digest({"client_secret": shape}, {}) != checked.digest({"client_secret": "summer2026"}, {})
    with pytest.raises(ConfigError, match="client_secret: must not be empty"):
        load_config(path, {**ENV, "SECRET": ""}, remember=True)


def _subschemas(node):
    """Every mapping in the schema ``node``, itself included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _subschemas(value)


def test_the_schema_checks_no_more_of_a_secret_than_the_digest_keeps():
    """If this fails, the schema came to check something else of a secret: make
    config/checked.py's _Secret keep it, or a changed secret could skip the schema."""
    found = [(key, sub) for node in _subschemas(schema.CONFIG_SCHEMA)
             for key, sub in node.get("properties", {}).items() if key in schema.SECRET_KEYS]
    assert {key for key, _ in found} >= {"client_id", "client_secret", "password", "healthcheck_url", "url", "dsn"}
    for key, sub in found:
        assert set(sub) <= {"type", "minLength", "pattern", "x-messages"}, key
        assert sub.get("type") == "string" and sub.get("minLength", 1) in (1, 16), key
        assert sub.get("pattern", "^https?://[^/\\s]+") == "^https?://[^/\\s]+", key


def test_a_document_that_fails_is_never_remembered_and_always_reported(world):
    path, remembered, calls = world
    load_config(path, ENV, remember=True)
    path.write_text(CONFIG.format(deadline=5))  # below the schema's minimum of 10
    for _ in range(2):
        with pytest.raises(ConfigError, match="deadline_seconds"):
            load_config(path, ENV, remember=True)
    assert len(calls) == 3
    path.write_text(CONFIG.format(deadline=60))  # back to the one that validated
    load_config(path, ENV, remember=True)
    assert len(calls) == 3


@pytest.mark.parametrize("content", ["", "garbage\n", "0" * 64 + "\n", "x" * 10_000])
def test_a_file_that_does_not_hold_the_digest_means_validating(world, content):
    path, remembered, calls = world
    remembered.write_text(content)
    load_config(path, ENV, remember=True)
    assert len(calls) == 1 and remembered.read_text().strip() != content.strip()


def test_a_link_is_neither_followed_nor_written_through(world, tmp_path):
    path, remembered, calls = world
    load_config(path, ENV, remember=True)
    target = tmp_path / "elsewhere"
    target.write_text(remembered.read_text())  # the right digest, behind a link
    remembered.unlink()
    remembered.symlink_to(target)
    load_config(path, ENV, remember=True)
    assert len(calls) == 2  # not read through the link
    assert not remembered.is_symlink() and target.read_text() == remembered.read_text()


def test_no_state_dir_yet_or_one_that_cannot_be_written_is_not_an_error(world, tmp_path):
    path, remembered, calls = world
    (tmp_path / "state").rmdir()
    load_config(path, ENV, remember=True)
    assert not (tmp_path / "state").exists()  # never made here: sync makes it, with its modes
    if os.geteuid() != 0:
        (tmp_path / "state").mkdir(mode=0o500)
        load_config(path, ENV, remember=True)
    assert len(calls) == 2 - (os.geteuid() == 0)


@pytest.mark.parametrize(("a", "b"), [
    (1, "1"), (1, 1.0), (1, True), (0, False), (None, math.nan), ("a", b"a"), ([1], (1,)),
    ({"a": 1}, {"a": "1"}), ({"1": 1}, {1: 1}), ("2026-12-01", dt.date(2026, 12, 1)), ("x\0", "x"),
])
def test_values_yaml_can_give_never_share_a_digest(a, b):
    assert checked.digest({"k": a}, {}) != checked.digest({"k": b}, {})
    assert checked.digest({"k": a}, {}) != checked.digest({"k": a}, {"type": "object"})  # the schema counts


def test_a_mapping_under_a_secrets_name_is_kept_whole(world):
    """A profile (or a unit of the imports) may be named like a secret: its settings count."""
    assert checked.digest({"profiles": {"password": {"past_days": 1}}}, {}) != checked.digest(
        {"profiles": {"password": {"past_days": 2}}}, {})


def test_no_mapping_of_names_the_user_chooses_takes_a_string():
    """Under a name the user chooses (a profile, a unit of the imports), a string is told
    only by its length class: the schema must then refuse any string there."""
    from jsonschema import Draft202012Validator

    found = [node["additionalProperties"] for node in _subschemas(schema.CONFIG_SCHEMA)
             if isinstance(node.get("additionalProperties"), dict)]
    assert found
    for sub in found:
        assert not any(Draft202012Validator(sub).is_valid(text) for text in ("", "x", "https://x", "false"))


def test_a_document_with_no_digest_is_validated_and_reported_as_ever(world):
    path, remembered, calls = world
    path.write_text(CONFIG.format(deadline=60) + "zzz: 0x" + "f" * 4000 + "\n")  # repr refuses such an int
    with pytest.raises(ConfigError, match="zzz: unknown key"):
        load_config(path, ENV, remember=True)
    assert not remembered.exists()


def test_jsonschema_is_not_imported_by_a_run_whose_config_is_remembered(world):
    path, _, _ = world
    code = ("import sys; from escapia_ical.config import load_config; "
            f"load_config({str(path)!r}, {ENV!r}, remember=True); print('jsonschema' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]
