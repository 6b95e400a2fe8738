"""`escapia-ical diagnose` end to end: the real CLI against the sandbox, read-only, bounded,
and never showing a secret, a token or guest data."""

from __future__ import annotations

import json
import re
import socket

import pytest
from conftest import CLI, Deployment, account_yaml, write_config

from escapia_ical.sandbox import SANDBOX_CLIENT_SECRET, SANDBOX_SOAP_PASSWORD, Sandbox

LIMIT = 50
KEYS = {"format", "account", "api", "configured", "window", "requests", "findings", "rate_limit_headers",
        "timings_ms"}
FINDINGS = {"hsapi": {"units", "end_date", "calendar_span", "work_orders"},
            "escapianet": {"units", "calendar_span", "letters", "holds", "unit_vs_batch"}}
SOAP_MODES = ("escapianet-per_unit", "escapianet-batch")


def deployed(tmp_path, sandbox: Sandbox, mode: str = "hsapi") -> Deployment:
    config = tmp_path / "accounts.yaml"
    write_config(config, account_yaml(mode))
    return Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state", mode)


def diagnose(deployment: Deployment, *args: str):
    deployment.sandbox.reset_request_log()
    result = deployment.run("diagnose", "--account", "sandbox", *args)
    return result, deployment.sandbox.request_count()


def test_hsapi_names_the_end_date_reading_the_data_fits(deployment):
    result, requests = diagnose(deployment)
    assert (result.returncode, result.stderr) == (0, "")  # no progress line off a terminal
    assert "the data fits end_date: exclusive, as configured" in result.stdout
    assert re.search(r"readable: \d+ work orders \(\d+ of the \d+ read take a unit", result.stdout), result.stdout
    assert 0 < requests <= LIMIT
    assert f"{requests} sent, at most {LIMIT} allowed" in result.stdout
    assert not deployment.output.exists(), "diagnose writes no feed"


def test_hsapi_verdict_follows_inclusive_end_dates(tmp_path):
    with Sandbox(max_page_size=3, end_date="inclusive") as sandbox:
        result, requests = diagnose(deployed(tmp_path, sandbox))
    assert result.returncode == 0
    assert "the data fits end_date: inclusive, but the account has exclusive: set end_date: inclusive" \
        in result.stdout
    assert requests <= LIMIT


@pytest.mark.parametrize("mode", SOAP_MODES)
def test_escapianet_reports_letters_holds_and_agreement(tmp_path, sandbox, mode):
    deployment = deployed(tmp_path, sandbox, mode)
    result, requests = diagnose(deployment)
    assert (result.returncode, result.stderr) == (0, "")
    assert f"calendar_mode: {mode.split('-', 1)[1]}" in result.stdout
    letters = next(line for line in result.stdout.splitlines() if line.startswith("letters"))
    assert "seen: A " in letters and " U " in letters and "none outside AUIO" in letters
    assert "agree on all" in result.stdout
    assert 0 < requests <= LIMIT


@pytest.mark.parametrize("mode", ["hsapi", *SOAP_MODES])
def test_json_has_the_documented_keys(tmp_path, sandbox, mode):
    deployment = deployed(tmp_path, sandbox, mode)
    result, requests = diagnose(deployment, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    api = "hsapi" if mode == "hsapi" else "escapianet"
    assert set(report) == KEYS and report["api"] == api and report["format"] == 1
    assert set(report["findings"]) == FINDINGS[api]
    assert all({"status", "summary"} <= set(f) for f in report["findings"].values())
    assert report["requests"]["sent"] == requests <= report["requests"]["limit"] == LIMIT
    assert all(set(t) == {"count", "min", "median", "max"} for t in report["timings_ms"].values())
    if api == "hsapi":
        assert report["findings"]["end_date"]["verdict"] == "exclusive"
    else:
        assert set(report["findings"]["letters"]["outside_AUIO"]) == set()


def _private_strings(sandbox: Sandbox) -> set[str]:
    """Every guest name, email and phone, reservation number, secret and token the sandbox knows."""
    found = {SANDBOX_CLIENT_SECRET, SANDBOX_SOAP_PASSWORD, "Bearer ", "Authorization"}
    for reservation in sandbox.data.reservations.values():
        found.add(reservation.id)
        if reservation.guest is not None:
            g = reservation.guest
            found |= {g.first + " " + g.last, g.last, g.email, g.phone}
    found |= set(sandbox._tokens)  # the bearer tokens issued (base64)
    return {s for s in found if s}


@pytest.mark.parametrize("mode", ["hsapi", "escapianet-per_unit"])
def test_no_secret_token_or_guest_data_in_either_output(deployment, mode, tmp_path):
    # The fixture's sandbox puts guest data into GetUnitNonAvailability answers.
    assert deployment.sandbox.guest_data_in_nonavailability
    deployment = deployed(tmp_path, deployment.sandbox, mode) if mode != "hsapi" else deployment
    outputs = []
    for args in ((), ("--json",), ("-vv",)):
        result, _ = diagnose(deployment, *args)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    private = _private_strings(deployment.sandbox)
    assert len(private) > 20 and any(len(s) == 6 and s.isdigit() for s in private)  # reservation numbers
    for text in outputs:
        leaked = sorted(s for s in private if s in text)
        assert not leaked, leaked


@pytest.mark.parametrize("mode", ["hsapi", "escapianet-batch"])
def test_wrong_credentials_are_one_line_and_the_failure_exit_code(tmp_path, sandbox, mode):
    deployment = deployed(tmp_path, sandbox, mode)
    result = deployment.run("diagnose", "--account", "sandbox", SANDBOX_SECRET="wrong",
                            SANDBOX_SOAP_PASSWORD="wrong")
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("escapia-ical: sandbox: ")
    assert "HTTP 401" in result.stderr or "error 497 (type 4)" in result.stderr
    assert "wrong" not in result.stderr


def test_an_unreachable_api_is_one_line(tmp_path, sandbox):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = tmp_path / "accounts.yaml"
    write_config(config, account_yaml("escapianet-batch", base_url=f"http://127.0.0.1:{port}"))
    deployment = Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state")
    result = deployment.run("diagnose", "--account", "sandbox")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "cannot reach Escapia" in result.stderr and "connection" in result.stderr


def test_an_unknown_account_is_a_usage_error(deployment):
    result = deployment.run("diagnose", "--account", "nope")
    assert result.returncode == 2 and "no account named 'nope'" in result.stderr



def test_the_readme_commands_run_against_the_sandbox(tmp_path):
    """The README's "against the bundled sandbox" block, as written (its port swapped for a
    free one): both diagnoses run, exit 0 and say what they found."""
    import os
    import shlex
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split("To see it against the bundled sandbox", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = " ".join(block.replace("\\\n", " ").splitlines())
    export = re.search(r"export ((?:\w+=\S+\s*)+)", lines).group(1)
    with Sandbox() as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "ESCAPIA_"))}
        env.update(dict(pair.split("=", 1) for pair in shlex.split(export.replace("18020", str(sandbox.port)))))
        commands = re.findall(r"\.venv/bin/escapia-ical (diagnose [^#\n]*?)(?=\s+\.venv/bin|\s*$)", lines)
        assert len(commands) == 2, lines
        for command in commands:
            result = subprocess.run([CLI, *shlex.split(command)], capture_output=True, text=True, env=env,
                                    cwd=root, timeout=120)
            assert result.returncode == 0, (command, result.stderr)
            assert "units" in result.stdout and "sent" in result.stdout, result.stdout
