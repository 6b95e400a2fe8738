"""The status page (report/): what it shows per unit, read back by parsing its HTML."""

from __future__ import annotations

import datetime as dt
import stat
from collections import Counter
from pathlib import Path

import pytest
from report_html import Page

from escapia_ical.config import load_config
from escapia_ical.errors import ConfigError
from escapia_ical.report import write_report, write_report_after_sync
from escapia_ical.report.page import gather_page
from escapia_ical.report.render import render_page
from escapia_ical.state import AccountState, write_state
from escapia_ical.status import RUNS_KEPT, load_status, record_run, save_status
from escapia_ical.sync import AccountResult, SyncReport, UnitOutcome

TODAY = dt.date.today()
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TOKEN = "0123456789abcdef0123456789abcdef"  # a secret feed name's token
EVIL = '<script>alert("x")</script>&amp;'
MAX_AGE = dt.timedelta(minutes=15)


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def deployment(tmp_path: Path, extra: str = "") -> Path:
    """A config and a state as a few syncs leave them: unit 101 fresh with two stays, a
    placeholder night and a held loss; 102 failed for two hours; a hostile unit id."""
    config = tmp_path / "accounts.yaml"
    config.write_text(f"""\
output_dir: out
state_dir: state
{extra}accounts:
  - {{name: a, api: hsapi, pmcid: "1", client_id: id, client_secret: s3cr3t-client,
     feed_tokens: true, feed_token_secret: s3cr3t-token-secret}}
""")
    config.chmod(0o600)
    state = tmp_path / "state"
    earlier = NOW - dt.timedelta(hours=2)
    record_run(state, _report(["101", "102", EVIL]), earlier, earlier + dt.timedelta(seconds=3), 0)
    record_run(state, _report(["101", EVIL], failed=["102"]), NOW - dt.timedelta(seconds=30), NOW, 1)
    AccountState(state, "a").save_feed_stamps({
        f"101-{TOKEN}.ics": {"unit": "101", "events": 2,
                             "ranges": f"{day(-3)}/{day(2)} {day(10)}/{day(12)} {day(200)}/{day(203)}",
                             "unknown": f"{day(20)}/{day(21)}"},
        f"101-{'f' * 32}.ics": {"unit": "101", "retired": NOW.isoformat(), "ranges": ""},  # an old name
        f"102-{TOKEN[::-1]}.ics": {"unit": "102", "events": 0, "ranges": ""},
        "evil.ics": {"unit": EVIL, "events": 0, "ranges": ""},
    })
    write_state(state / "accounts" / "a" / "policy.json", {"version": 1, "units": {
        "101": _report([]).accounts["a"].holds["101"]}})
    return config


def _report(units: list[str], failed: tuple[str, ...] = ()) -> SyncReport:
    result = AccountResult("a", requests=Counter(), responses=Counter())
    for unit in [*units, *failed]:
        error = "HTTP 500 from Escapia" if unit in failed else None
        result.units.append(UnitOutcome("a", unit, Path(f"/out/a/{unit}-{TOKEN}.ics"), error=error, events=2,
                                        rewritten=error is None))
    hold = {"since": NOW.isoformat(), "seen": NOW.isoformat(), "lost": f"{day(30)}/{day(32)}", "booked": False,
            "breaker": False}
    result.holds = {"101": hold}  # what the run's publish policy held
    return SyncReport(accounts={"a": result})


def page_of(config_path: Path, **options) -> Page:
    config = load_config(config_path, secrets=False)
    return Page(render_page(gather_page(config, NOW, TODAY, MAX_AGE, **options)))


def test_rows_health_and_the_strip_of_a_known_unit(tmp_path):
    page = page_of(deployment(tmp_path))
    assert set(page.units) == {("a", "101"), ("a", "102"), ("a", EVIL)}
    assert page.units[("a", "101")]["health"] == "held"  # the policy holds a loss of its nights
    assert page.units[("a", "102")]["health"] == "stale"  # failed 2 h after its last success
    assert page.units[("a", EVIL)]["health"] == "fresh"
    nights = page.units[("a", "101")]["nights"]
    assert [d for d, _ in nights] == [str(day(i)) for i in range(90)]
    kinds = {d: k for d, k in nights}
    blocked = {str(day(i)) for i in (0, 1, 10, 11)}  # [day-3, day 2) from today on, [day 10, day 12)
    assert {d for d, k in kinds.items() if k == "blocked"} == blocked
    assert {d for d, k in kinds.items() if k == "unknown"} == {str(day(20))}
    assert {d for d, k in kinds.items() if k == "held"} == {str(day(30)), str(day(31))}
    assert kinds[str(day(2))] == kinds[str(day(12))] == kinds[str(day(89))] == "free"  # checkout days
    assert len(page.units[("a", "102")]["nights"]) == 90
    assert "HTTP 500 from Escapia" in page.row_text("a", "102")
    assert "Needs attention" in page.all_text


def test_a_hostile_unit_id_is_text_not_markup(tmp_path):
    html = render_page(gather_page(load_config(deployment(tmp_path), secrets=False), NOW, TODAY, MAX_AGE))
    assert "<script" not in html and "&lt;script&gt;" in html
    page = Page(html)
    assert "script" not in page.tags
    assert EVIL in page.row_text("a", EVIL)


def test_no_secret_and_no_feed_name_without_urls(tmp_path):
    config = deployment(tmp_path)
    out = tmp_path / "page" / "status.html"
    write_report(load_config(config, secrets=False), out)
    html = out.read_text()
    for secret in (TOKEN, TOKEN[::-1], "f" * 32, "s3cr3t", ".ics", "/out/a"):
        assert secret not in html
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    write_report(load_config(config, secrets=False), out, base_url="https://feeds.example.com/")
    page = Page(out.read_text())
    assert f"https://feeds.example.com/a/101-{TOKEN}.ics" in page.row_text("a", "101")  # the current name
    assert "f" * 32 not in out.read_text() and "s3cr3t" not in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_the_page_is_self_contained(tmp_path):
    page = page_of(deployment(tmp_path))
    assert not page.tags & {"script", "link", "img", "iframe", "object"}
    assert not [a for a in page.attributes if a.startswith(("http:", "https:", "//"))]


def test_channel_fetches_are_shown_from_the_one_function(tmp_path):
    seen = []

    def fetches(state_dir, account):
        seen.append(account)
        return {"101": {"Airbnb": {"last": "2026-05-01T10:00:00+00:00", "status": 200, "count": 12}}}

    config = deployment(tmp_path)
    page = page_of(config, fetches=fetches)
    assert seen == ["a"]
    assert "Airbnb: 2026-05-01 10:00 (200, 12×)" in page.row_text("a", "101")
    assert "none logged" in page.row_text("a", "102")
    assert "no fetch log" in page_of(config).row_text("a", "101")  # no channels.json in this state


def test_runs_of_the_last_day_are_kept_bounded_and_shown(tmp_path):
    config = deployment(tmp_path)
    state = tmp_path / "state"
    runs = load_status(state)["runs"]
    assert [r["exit_code"] for r in runs] == [0, 1] and runs[1]["unit_errors"] == 1
    assert runs[0]["feeds_rewritten"] == 3
    old = NOW - dt.timedelta(hours=25)
    status = load_status(state)
    status["runs"] = [{"finished": old.isoformat(), "exit_code": 0}, "junk", {"exit_code": 0}, *status["runs"]]
    save_status(state, status)
    assert len(load_status(state)["runs"]) == 3  # junk dropped, the old one kept until the next run
    record_run(state, _report(["101"]), NOW, NOW, 0)
    assert len(load_status(state)["runs"]) == 3  # older than 24 h: gone
    status = load_status(state)
    status["runs"] = [status["runs"][-1]] * (RUNS_KEPT + 5)
    save_status(state, status)
    record_run(state, _report(["101"]), NOW, NOW, 0)
    assert len(load_status(state)["runs"]) == RUNS_KEPT
    page = Page(render_page(gather_page(load_config(config, secrets=False), NOW, TODAY, MAX_AGE)))
    assert f"{RUNS_KEPT} runs, 0 not exit 0" in page.all_text


def test_never_inside_output_dir_unless_asked(tmp_path):
    config = load_config(deployment(tmp_path), secrets=False)
    inside = tmp_path / "out" / "status.html"
    with pytest.raises(ConfigError, match="inside output_dir"):
        write_report(config, inside)
    assert not inside.exists()
    write_report(config, inside, inside_output_dir=True)
    assert inside.exists()
    with pytest.raises(ConfigError, match="report_html: must not be inside output_dir"):
        load_config(deployment(tmp_path, "report_html: out/a/status.html\n"), secrets=False)


def test_a_page_that_cannot_be_written_only_warns_after_a_sync(tmp_path, caplog):
    (tmp_path / "blocker").write_text("a file, not a folder")
    config = load_config(deployment(tmp_path, "report_html: blocker/status.html\n"), secrets=False)
    write_report_after_sync(config, NOW)
    assert "report_html: cannot write the status page" in caplog.text


def test_the_template_ships_in_a_non_editable_install():
    import configparser

    import escapia_ical.report

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    pattern = setup["options.package_data"]["escapia_ical.report"].strip()
    shipped = {p.name for p in Path(escapia_ical.report.__file__).parent.glob(pattern)}
    assert "report.html.j2" in shipped
