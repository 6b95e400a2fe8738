"""Taking a host's SQLite state into PostgreSQL (store/documents.py): two hosts starting
together import one of their states whole, never a mix, and the other host is told, at
every run, that its file is not read."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

from escapia_ical.state import close_stores, read_state, write_state
from escapia_ical.store.documents import use_postgresql

OPEN = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from escapia_ical.state import read_state
    from escapia_ical.store.documents import use_postgresql
    state_dir, dsn = Path(sys.argv[1]), sys.argv[2]
    use_postgresql(state_dir, dsn, "import_race")
    print(sorted(read_state(state_dir / "accounts" / "pm" / "feeds.json")))
""")


def local_state(state_dir, host: str) -> None:
    use_postgresql(state_dir, None)
    feeds = state_dir / "accounts" / "pm" / "feeds.json"
    write_state(feeds, {f"u{i}.ics": {"unit": f"u{i}", "by": host} for i in range(50)} | {f"{host}.ics": {}})
    write_state(state_dir / "accounts" / "pm" / "names.json", {"revoked": [f"{host}-old.ics"]})
    close_stores()


def test_two_hosts_import_one_state_whole(tmp_path, postgres_dsn):
    hosts = {name: tmp_path / name for name in ("a", "b")}
    for name, folder in hosts.items():
        local_state(folder, name)
    runs = [subprocess.Popen([sys.executable, "-c", OPEN, str(folder), postgres_dsn], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for folder in hosts.values()]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    seen = {out for out, _ in outputs}
    assert len(seen) == 1, outputs  # both read the same state
    winner = "a" if "'a.ics'" in seen.pop() else "b"
    loser = "b" if winner == "a" else "a"
    use_postgresql(hosts[winner], postgres_dsn, "import_race")
    try:
        feeds = read_state(hosts[winner] / "accounts" / "pm" / "feeds.json")
        assert {entry.get("by") for entry in feeds.values() if entry} == {winner}  # never a mix
        assert read_state(hosts[winner] / "accounts" / "pm" / "names.json") == {"revoked": [f"{winner}-old.ics"]}
    finally:
        use_postgresql(hosts[winner], None)
        close_stores()
    told = dict(zip(hosts, (err for _, err in outputs), strict=True))
    assert f"{hosts[loser] / 'state.db'} of this host is not read" in told[loser]
    assert "is not read" not in told[winner]
    again = subprocess.run([sys.executable, "-c", OPEN, str(hosts[loser]), postgres_dsn], capture_output=True,
                           text=True, timeout=60)
    assert "of this host is not read" in again.stderr  # at every run, until it is moved away


def test_json_files_a_kill_left_after_the_import_into_postgresql_are_renamed(tmp_path, postgres_dsn, caplog):
    """As with SQLite (test_store.py): after a kill between the import's commit and its
    renames, the files still as read are renamed; one written since is named, unread."""
    state = tmp_path / "state"
    folder = state / "accounts" / "pm"
    folder.mkdir(parents=True)
    feeds = {"u1.ics": {"unit": "u1", "digest": "d"}}
    (folder / "feeds.json").write_text(json.dumps(feeds))
    (folder / "names.json").write_text(json.dumps({"revoked": ["old.ics"]}))
    use_postgresql(state, postgres_dsn, "json_left")
    try:
        assert read_state(folder / "feeds.json") == feeds
        close_stores()
        for name in ("feeds.json", "names.json"):  # as the kill left them
            (folder / f"{name}.imported").rename(folder / name)
        newer = folder / ".names.json.tmp"  # an earlier version writes its file again, whole
        newer.write_text(json.dumps({"revoked": ["older.ics"]}))
        newer.replace(folder / "names.json")
        with caplog.at_level(logging.WARNING):
            assert read_state(folder / "names.json") == {"revoked": ["old.ics"]}
        assert sorted(os.listdir(folder)) == ["feeds.json.imported", "names.json"]
        assert "1 JSON state file(s) of an earlier version taken into" in caplog.text
        assert f"(e.g. {folder / 'names.json'}) are not read" in caplog.text
    finally:
        use_postgresql(state, None)
        close_stores()


def test_json_files_are_renamed_only_once_the_import_into_postgresql_is_committed(tmp_path, postgres_dsn,
                                                                                 monkeypatch):
    """The import runs inside the import lock's transaction: a file renamed before its
    commit (then killed, or the commit lost with the connection) would be lost to the next
    run, which would find nothing to take in."""
    from pathlib import Path

    from escapia_ical.store.postgresql import PostgresStore
    state = tmp_path / "state"
    (state / "accounts" / "pm").mkdir(parents=True)
    (state / "accounts" / "pm" / "feeds.json").write_text(json.dumps({"u1.ics": {"unit": "u1"}}))
    committed = []
    rename = Path.rename

    def checking_rename(self, target):
        other = PostgresStore(postgres_dsn, "state", "json_commit", where="another connection")
        try:
            committed.append(other.read("store/imported") is not None)
        finally:
            other.close()
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", checking_rename)
    use_postgresql(state, postgres_dsn, "json_commit")
    try:
        assert read_state(state / "accounts" / "pm" / "feeds.json") == {"u1.ics": {"unit": "u1"}}
    finally:
        use_postgresql(state, None)
        close_stores()
    assert committed == [True]
