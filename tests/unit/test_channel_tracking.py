"""Channel fetches (channels in status.db): fetches merged per feed and channel, the log position kept with them,
damaged state survived, silent channels noted, the metric, and the config block."""

import contextlib
import datetime as dt
import logging
import sqlite3
import stat

import pytest

from escapia_ical.channels import ChannelBook, silence_notes, update_channels
from escapia_ical.config import load_config
from escapia_ical.errors import ConfigError
from escapia_ical.metrics import write_metrics
from escapia_ical.state import AccountState, read_state, write_state

NOW = dt.datetime(2026, 5, 2, 12, 0, tzinfo=dt.UTC)
CONFIG = """\
output_dir: out
state_dir: state
accounts:
  - {name: acme, api: hsapi, pmcid: "1", client_id: id, client_secret: secret}
channels:
  access_log: logs/access.log
"""


def entry(when: dt.datetime, method="GET", path="/acme/101.ics", status=200, agent="Airbnb-Sync/1.0") -> bytes:
    return f"{when.isoformat()}\t{method}\t{path}\t{status}\t512\t{agent}\n".encode()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    (tmp_path / "logs").mkdir()
    loaded = load_config(path)
    AccountState(loaded.state_dir, "acme").save_feed_stamps({"101.ics": {"unit": "101"},
                                                             "102-secret0token.ics": {"unit": "102"}})
    return loaded


def append(config, *lines: bytes) -> None:
    with open(config.channels.access_log, "ab") as stream:
        stream.write(b"".join(lines))


def test_the_config_block_resolves_the_log_and_has_defaults(config, tmp_path):
    assert config.channels.access_log == tmp_path / "logs" / "access.log"
    assert (config.channels.silence_hours, config.channels.forget_days) == (24.0, 30.0)


def test_every_problem_in_the_block_is_reported_with_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("  access_log: logs/access.log\n",
                                   "  silence_hours: -1\n  max_bytes_per_run: 10\n  colour: red\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert any(p.startswith(f"{path}:5: channels: missing required key 'access_log'") for p in problems)
    assert any(p.startswith(f"{path}:6: channels.silence_hours: must be greater than 0") for p in problems)
    assert any(p.startswith(f"{path}:7: channels.max_bytes_per_run: must be at least 65536") for p in problems)
    assert any(p.startswith(f"{path}:8: channels.colour: unknown key") for p in problems)


def test_fetches_are_counted_per_unit_and_channel_and_never_twice(config):
    t = NOW - dt.timedelta(hours=1)
    append(config, entry(t), entry(t + dt.timedelta(minutes=5), status=304),
           entry(t, path="/acme/102-secret0token.ics", agent="Google-Calendar-Importer"),
           entry(t, path="/acme/999.ics"), b"garbage\n")
    run = update_channels(config, NOW)
    assert (run.tally.lines, run.tally.malformed, run.tally.ignored, run.error) == (5, 1, 1, None)
    update_channels(config, NOW)  # nothing new: nothing counted again
    append(config, entry(t + dt.timedelta(minutes=10)))
    update_channels(config, NOW)
    book = ChannelBook.load(config.state_dir)
    airbnb = book.feeds["acme"]["101"]["airbnb"]
    assert airbnb == {"first": "2026-05-02T11:00:00+00:00", "last": "2026-05-02T11:10:00+00:00",
                      "status": 200, "count": 3}
    assert book.feeds["acme"]["102"]["google-calendar"]["count"] == 1
    db = config.state_dir / "status.db"
    with contextlib.closing(sqlite3.connect(db)) as con:  # every row the channels document is kept as
        rows = con.execute("SELECT key, part, body FROM documents WHERE key = 'channels'").fetchall()
    text = "\n".join(map(" ".join, rows))
    assert '"101"' in text  # (the rows were found)
    assert "secret0token" not in text and "127.0.0.1" not in text  # unit ids, never file names or addresses
    assert stat.S_IMODE(db.stat().st_mode) == 0o640  # status reads it as the monitoring user
    assert read_state(config.state_dir / "channels.json")["read"]["lines"] == 1


def test_a_missing_log_is_an_error_recorded_not_raised(config):
    run = update_channels(config, NOW)
    assert "does not exist" in run.error
    notes = silence_notes(ChannelBook.load(config.state_dir), NOW, dt.timedelta(hours=24), {"acme": "all"})
    assert len(notes) == 1 and "channel fetch log:" in notes[0]["problem"]


def test_a_damaged_state_file_is_a_warning_and_treated_as_absent(config, caplog):
    append(config, entry(NOW))
    update_channels(config, NOW)
    assert ChannelBook.load(config.state_dir).feeds
    with contextlib.closing(sqlite3.connect(config.state_dir / "status.db")) as con, con:
        con.execute("DELETE FROM documents WHERE key = 'channels'")
        con.execute("INSERT INTO documents (key, part, body) VALUES ('channels', '[]', '{not json')")
    with caplog.at_level(logging.WARNING):
        assert ChannelBook.load(config.state_dir).feeds == {}
    assert "unreadable row(s) ignored" in caplog.text and str(config.state_dir / "status.db") in caplog.text
    write_state(config.state_dir / "channels.json", {"version": 1, "log": {"path": "x", "position": {"offset": "a"}},
                                "feeds": {"acme": {"101": {"airbnb": {"last": "yesterday"},
                                                           "other": {"first": NOW.isoformat(), "last": NOW.isoformat(),
                                                                     "status": 200, "count": 1}}}}})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        book = ChannelBook.load(config.state_dir)
    assert list(book.feeds["acme"]["101"]) == ["other"] and book.position is None
    assert "feeds.acme.101.airbnb is not a fetch" in caplog.text
    append(config, entry(NOW))
    assert update_channels(config, NOW).error is None  # and the next run rewrites it


def test_a_channel_silent_longer_than_silence_hours_is_noted_by_feed_and_channel(config):
    append(config, entry(NOW - dt.timedelta(hours=25)), entry(NOW - dt.timedelta(hours=25), agent="curl/8"),
           entry(NOW - dt.timedelta(hours=2), path="/acme/102-secret0token.ics", agent="Google-Calendar-Importer"))
    update_channels(config, NOW)
    book = ChannelBook.load(config.state_dir)
    notes = silence_notes(book, NOW, dt.timedelta(hours=24), {"acme": "all"})
    assert [n["account"] for n in notes] == ["acme"]  # "other" (curl, browsers) is never warned about
    assert notes[0]["problem"].startswith("101: airbnb has not fetched this feed for 25h")
    assert silence_notes(book, NOW, dt.timedelta(hours=26), {"acme": "all"}) == []
    assert silence_notes(book, NOW, dt.timedelta(hours=24), {"acme": ["102"]}) == []  # 101 not published
    assert silence_notes(book, NOW, dt.timedelta(hours=24), {}) == []


def test_a_channel_silent_for_forget_days_is_forgotten(config):
    append(config, entry(NOW - dt.timedelta(days=31)), entry(NOW - dt.timedelta(days=1), agent="Guesty"))
    update_channels(config, NOW)
    assert list(ChannelBook.load(config.state_dir).feeds["acme"]["101"]) == ["guesty"]


def test_the_metric_gives_each_last_fetch_as_a_timestamp(config, tmp_path):
    append(config, entry(NOW - dt.timedelta(hours=1)))
    update_channels(config, NOW)
    metrics = tmp_path / "metrics.prom"
    write_metrics(metrics, {"accounts": {}}, NOW, ChannelBook.load(config.state_dir).feeds)
    expected = (NOW - dt.timedelta(hours=1)).timestamp()
    line = f'escapia_ical_channel_last_fetch_timestamp_seconds{{account="acme",channel="airbnb",unit="101"}} {expected:e}'
    text = metrics.read_text()
    assert any(row.startswith("escapia_ical_channel_last_fetch_timestamp_seconds{")
               and float(row.rsplit(" ", 1)[1]) == expected and 'channel="airbnb"' in row for row in text.splitlines()), (
        line, text)


def test_a_log_that_cannot_be_read_is_an_error_recorded(config):
    config.channels.access_log.mkdir()
    run = update_channels(config, NOW)
    assert run.error.startswith(f"cannot read {config.channels.access_log}")
    assert ChannelBook.load(config.state_dir).read["error"] == run.error
