"""Accounts synced side by side (sync/parallel.py): requests of several accounts in flight
at once, a bound on all of them (http.max_concurrency_total), and stderr told account by
account in the configured order, as if they had run one after another."""

from __future__ import annotations

import re
from collections.abc import Callable

from conftest import Deployment, account_yaml, write_config
from feeds import read_nights

from escapia_ical.feeds.names import feed_filename
from escapia_ical.sandbox import Sandbox

NAMES = ("zeta", "alpha", "mid")  # not sorted: the configured order is the order told


def deploy(tmp_path, sandbox: Sandbox, total: int | None = None, mode: str = "hsapi-full",
           more: Callable[[str], str] = lambda name: "") -> Deployment:
    """The accounts NAMES, each one request in flight at most (and ``more(name)`` of YAML)."""
    config = tmp_path / "accounts.yaml"
    accounts = "".join(account_yaml(mode, name=name, extra="    http: {max_concurrency: 1}\n" + more(name))
                       for name in NAMES)
    write_config(config, accounts)
    if total is not None:
        config.write_text(config.read_text().replace("http:\n", f"http:\n  max_concurrency_total: {total}\n", 1))
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state", mode)


def test_accounts_run_side_by_side_and_their_lines_are_told_in_order(tmp_path):
    with Sandbox(latency=0.05) as sandbox:
        deployment = deploy(tmp_path, sandbox)
        result = deployment.run("sync", "-v")
        assert result.returncode == 0, result.stderr
        # Each account has one request in flight at most: more at once means accounts overlapped.
        assert sandbox.max_in_flight >= 2
        for name in NAMES:
            for unit in sandbox.unit_ids():
                assert read_nights(deployment.output / name / feed_filename(unit)) == deployment.truth(unit)
    accounts = [m.group(1) for m in re.finditer(r"^escapia-ical: (?:[A-Z]+: )?(zeta|alpha|mid)[:/]", result.stderr,
                                                re.M)]
    assert accounts, result.stderr
    told = [name for i, name in enumerate(accounts) if i == 0 or accounts[i - 1] != name]
    assert told == list(NAMES), told  # one block per account, in the configured order


def test_max_concurrency_total_bounds_every_account_together(tmp_path):
    with Sandbox(latency=0.05) as sandbox:
        deployment = deploy(tmp_path, sandbox, total=1)
        result = deployment.run("sync")
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert sandbox.max_in_flight == 1


def test_max_concurrency_total_is_a_top_level_key_only(tmp_path, sandbox):
    deployment = deploy(tmp_path, sandbox)
    text = deployment.config.read_text().replace("http: {max_concurrency: 1}", "http: {max_concurrency_total: 4}", 1)
    deployment.config.write_text(text)
    result = deployment.run("check-config")
    assert result.returncode == 2 and "accounts[0].http.max_concurrency_total: unknown key" in result.stderr


def test_a_channel_exports_lines_are_told_with_its_account(tmp_path):
    """The double-booking watch's workers log as their account: a failing export's warning
    is told in its account's block, not ahead of every block in the order threads ran."""
    with Sandbox(latency=0.05) as sandbox:
        unit = sandbox.unit_ids()[0]
        deployment = deploy(tmp_path, sandbox, more=lambda name: f"""\
    imports:
      units:
        "{unit}":
          - {{channel: airbnb, url: "${{SANDBOX_URL}}/_channels/gone-{name}.ics"}}
""")
        result = deployment.run("sync", "-v")
        assert sandbox.max_in_flight >= 2  # side by side (one request at most per account)
    assert result.returncode in (0, 1), result.stderr
    told = [m.group(1) for m in re.finditer(r"^escapia-ical: (?:\w+: )?(zeta|alpha|mid)[:/]", result.stderr, re.M)]
    blocks = [name for i, name in enumerate(told) if i == 0 or told[i - 1] != name]
    assert blocks == list(NAMES), result.stderr
    for name in NAMES:
        assert re.search(rf"^escapia-ical: \w+: {name}/{unit}: airbnb export .*its last events are kept",
                         result.stderr, re.M), result.stderr
