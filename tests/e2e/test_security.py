"""Secrets stay secret, files get the right modes, TLS stays on."""

from __future__ import annotations

import stat

from conftest import account_yaml, write_config

from escapia_ical.config import HttpPolicy
from escapia_ical.sources.http import HttpClient

WRONG_SECRET = "Wr0ng-s3cr3t-€-do-not-print"
WRONG_PASSWORD = "Wr0ng-passw0rd-<&>-do-not-print"


def test_no_secret_reaches_any_output(deployment):
    accounts = (account_yaml("hsapi") + account_yaml("escapianet-per_unit", name="soap")
                + account_yaml("hsapi", name="bad-rest").replace("${SANDBOX_SECRET}", WRONG_SECRET)
                + account_yaml("escapianet-batch", name="bad-soap").replace("${SANDBOX_SOAP_PASSWORD}",
                                                                            WRONG_PASSWORD))
    write_config(deployment.config, accounts)
    deployment.sandbox.fail_unit(deployment.sandbox.unit_ids()[0], status=500)
    log_file = deployment.root / "sync.log"
    runs = [deployment.run("sync", "-vv", "--log-file", str(log_file)) for _ in range(2)]
    assert all(r.returncode == 1 for r in runs)
    secrets = {"sandbox-secret", "sandbox-password", WRONG_SECRET, WRONG_PASSWORD}
    token_file = deployment.state / "accounts" / "sandbox" / "token.json"
    bearer = token_file.read_text().split('"authorization": "Bearer ')[1].split('"')[0]
    texts = {"stdout": "".join(r.stdout for r in runs), "stderr": "".join(r.stderr for r in runs),
             "log file": log_file.read_text()}
    for path in [*deployment.state.rglob("*"), *deployment.output.rglob("*")]:
        if path.is_file() and path != token_file:
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert "bad-rest: auth/token: credentials refused" in texts["stderr"]
    assert "bad-soap: UnitSearch: Escapia error" in texts["stderr"]
    for where, text in texts.items():
        for secret in secrets | {bearer}:
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert not any(s in token_file.read_text() for s in secrets), "the token file holds only the token"


def test_file_modes(deployment):
    assert deployment.run("sync").returncode == 0
    for path in (deployment.output / "sandbox").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    for path in deployment.state.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert stat.S_IMODE(deployment.state.stat().st_mode) == 0o700


def test_tls_verification_is_on_and_plain_http_is_loopback_only(deployment):
    assert HttpClient(HttpPolicy()).session.verify is True
    write_config(deployment.config, account_yaml(base_url="http://hsapi.example.com/dragomanadapter"))
    result = deployment.run("check-config")
    assert result.returncode == 2
    assert "plain http is only allowed for loopback; use https" in result.stderr
