"""Review of the SQLite state (issue 13): what the real CLI does with state.db and status.db
in the cases the store's own tests leave out."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import Deployment
from feeds import read_nights

from escapia_ical.state import STATE_DB
from escapia_ical.status import load_status

FEEDS_KEY = "accounts/sandbox/feeds"


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("escapia-ical: warning:")]


def plant_part(db: Path, key: str, part: bytes | str, body: str = "1") -> None:
    """Add one row to the document ``key`` whose *part* (not its body) is damaged."""
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO documents (key, part, body) VALUES (?, CAST(? AS TEXT), ?)", (key, part, body))
    con.close()


def test_a_row_whose_part_is_not_utf8_heals(deployment: Deployment):
    """The body of a row may be damaged (healed, tests/e2e/test_state_healing.py); its part,
    stored as text the same way, must be too."""
    assert deployment.run("sync").returncode == 0
    plant_part(deployment.state / STATE_DB, FEEDS_KEY, b'["\xff\xfe"]')
    sync = deployment.run("sync")
    assert sync.returncode == 0, sync.stderr
    assert len(warnings_of(sync.stderr)) == 1 and FEEDS_KEY in sync.stderr, sync.stderr
    again = deployment.run("sync")
    assert (again.returncode, again.stderr) == (0, ""), again.stderr


@pytest.mark.parametrize("part", ["5", "null", "[1]"])
def test_a_row_whose_part_is_json_but_not_a_path_heals(deployment: Deployment, part):
    """A part that decodes but is not a list of names: one bad row, left out with a warning."""
    assert deployment.run("sync").returncode == 0
    plant_part(deployment.state / STATE_DB, FEEDS_KEY, part)
    sync = deployment.run("sync")
    assert sync.returncode == 0, sync.stderr
    assert "unexpected" not in sync.stderr, sync.stderr
    again = deployment.run("sync")
    assert (again.returncode, again.stderr) == (0, ""), again.stderr


def free_start(deployment: Deployment, unit: str) -> dt.date:
    """The first day from 30 days ahead whose night and the next are free."""
    taken = deployment.truth(unit)
    day = dt.date.today() + dt.timedelta(days=30)
    while day in taken or day + dt.timedelta(days=1) in taken:
        day += dt.timedelta(days=1)
    return day


def test_a_state_db_that_is_not_a_database_does_not_stop_publishing(deployment: Deployment):
    """README "Corrupt state heals": state is re-derivable; with JSON files a corrupt feeds.json
    was a warning and a full sync. A state.db that is damaged as a whole must not keep every
    feed from being published, tick after tick."""
    assert deployment.run("sync").returncode == 0
    unit = deployment.sandbox.unit_ids()[0]
    (deployment.state / STATE_DB).write_bytes(b"garbage " * 512)
    start = free_start(deployment, unit)
    deployment.sandbox.add_reservation(unit, start, start + dt.timedelta(days=2))
    for _tick in range(2):
        sync = deployment.run("sync")
        assert read_nights(deployment.feed(unit)) == deployment.truth(unit), sync.stderr


def test_a_unit_id_with_a_lone_surrogate_is_recorded(deployment: Deployment, monkeypatch):
    """HSAPI answers are JSON, where "\\ud800" is a legal escape: a unit id (or any text from
    Escapia) may hold a lone surrogate, and the product handles it (feeds/names.py hashes ids
    with "surrogatepass", tests/unit/test_fuzz.py). The JSON state files escaped it
    (json.dumps' ensure_ascii); the store's rows are UTF-8 and must still take it."""
    from escapia_ical.sandbox import handler

    # What a real server may send: the same answers, every non-ASCII character escaped.
    monkeypatch.setattr(handler, "_json", lambda payload: json.dumps(payload).encode("ascii"))
    odd = "odd\ud800"
    deployment.sandbox.data.add_unit(odd, "ODD", "Odd unit", 990)
    sync = deployment.run("sync")
    assert sync.returncode == 0, sync.stderr
    from escapia_ical.state import AccountState
    stamps = AccountState(deployment.state, "sandbox").feed_stamps()
    assert {entry["unit"] for entry in stamps.values()} == set(deployment.sandbox.unit_ids())
    assert odd in load_status(deployment.state)["accounts"]["sandbox"]["units"]



def test_json_state_an_earlier_version_wrote_after_the_import_is_not_ignored_silently(deployment: Deployment):
    """README, Upgrades: "going back to an earlier version means a full sync, nothing worse".
    Coming forward again, the database (imported once) is taken as it was before the downgrade
    and the JSON files the earlier version wrote meanwhile (its held losses, a `rotate`'s name
    generations: the URLs pasted into channels) are ignored without a word."""
    assert deployment.run("sync").returncode == 0
    folder = deployment.state / "accounts" / "sandbox"
    # What an earlier version leaves after a downgrade: its own JSON state, written afresh.
    (folder / "names.json").write_text(json.dumps({"generations": {deployment.sandbox.unit_ids()[0]: 1},
                                                   "revoked": []}), encoding="utf-8")
    sync = deployment.run("sync")
    assert sync.returncode == 0, sync.stderr
    assert "names.json" in sync.stderr, "a newer JSON state file beside state.db, ignored without a word"


def test_everything_stays_in_a_state_dir_whose_parent_is_named_accounts(deployment: Deployment):
    """README: "Nothing outside output/ and state_dir". A hosted service keeping one state_dir
    per customer as /var/lib/escapia/accounts/<customer> must find status.db (and the notices)
    in it: state._state_dir_of takes any <folder>/accounts/<name>/<file> for an account's
    document, so state_dir/status.json is mapped to the folder two levels up."""
    state = deployment.root / "accounts" / "customer-1"
    deployment.config.write_text(deployment.config.read_text().replace("state_dir: state", f"state_dir: {state}"))
    sync = deployment.run("sync")
    assert sync.returncode == 0, sync.stderr
    outside = sorted(p.name for p in deployment.root.iterdir() if p.name not in ("accounts", "output", "accounts.yaml"))
    assert outside == [] and sorted(p.name for p in (deployment.root / "accounts").iterdir()) == ["customer-1"], outside
    assert (state / "status.db").exists()
    status = deployment.run("status")
    assert status.returncode == 0, status.stderr


def test_a_unit_name_with_a_lone_surrogate_is_recorded(deployment: Deployment, monkeypatch):
    """A name typed by a property manager, cut by the server between the two halves of an emoji
    (JSON "\\ud83c"): the feed is made (feeds/render.py drops lone surrogates), and the state
    (the change tracker keeps the unit list with names) must be saved too."""
    from escapia_ical.sandbox import handler

    monkeypatch.setattr(handler, "_json", lambda payload: json.dumps(payload).encode("ascii"))
    unit = deployment.sandbox.data.add_unit("1020-990", "ODD", "Beach house \ud83c", 990)
    first = deployment.run("sync")
    assert first.returncode == 0, first.stderr
    start = free_start(deployment, unit.id)
    deployment.sandbox.add_reservation(unit.id, start, start + dt.timedelta(days=2))
    second = deployment.run("sync")
    assert second.returncode == 0, second.stderr
    assert read_nights(deployment.feed(unit.id)) == deployment.truth(unit.id)
