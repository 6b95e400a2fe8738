"""diagnose in-process: the request budget, and findings against the sandbox (loopback) or
a recorded-looking HSAPI served by ``responses``."""

from __future__ import annotations

import base64
import json

import pytest

from escapia_ical.config import HsapiAccount, HttpPolicy, load_config
from escapia_ical.diagnose import diagnose
from escapia_ical.diagnose.budget import BudgetSpent, RequestBudget
from escapia_ical.diagnose.hsapi_probes import _work_orders
from escapia_ical.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PMC_CODE,
    SANDBOX_PMCID,
    SANDBOX_SOAP_PASSWORD,
    SANDBOX_SOAP_USER,
    Sandbox,
)
from escapia_ical.sources.hsapi import HsapiSource

BASE = "https://hsapi.test/dragomanadapter"
ENCODED = base64.b64encode(b"6f1c2a4e-93b1-4d7e-9c55-0b1e2f3a4d5c").decode()
TOKEN = {"$id": "1", "expiration": "2999-01-01T00:00:00Z", "id": "6f1c2a4e", "encodedId": ENCODED,
         "authorizationHeaderValue": f"Bearer {ENCODED}"}


@pytest.fixture
def sandbox():
    with Sandbox(max_page_size=5) as server:
        yield server


def config_for(tmp_path, sandbox, api: str):
    keys = (f'api: hsapi\n    pmcid: "{SANDBOX_PMCID}"\n    client_id: {SANDBOX_CLIENT_ID}\n'
            f"    client_secret: {SANDBOX_CLIENT_SECRET}" if api == "hsapi" else
            f"api: escapianet\n    username: {SANDBOX_SOAP_USER}\n    password: {SANDBOX_SOAP_PASSWORD}\n"
            f'    property_manager_code: "{SANDBOX_PMC_CODE}"')
    path = tmp_path / "accounts.yaml"
    path.write_text(f"""\
output_dir: output
state_dir: state
http: {{retry_attempts: 2, retry_initial_wait: 0, retry_max_wait: 0}}
accounts:
  - name: a
    base_url: {sandbox.base_url}
    {keys}
""", encoding="utf-8")
    path.chmod(0o600)
    config = load_config(path)
    return config, config.accounts[0]


def test_the_budget_refuses_requests_beyond_its_limit_and_keeps_rate_headers():
    budget = RequestBudget(limit=2)
    budget.sending("A")
    budget.answered("A", "200", {"X-RateLimit-Remaining": "9", "Content-Type": "x"}, 0.010)
    budget.sending("A")
    budget.answered("A", "429", {"x-ratelimit-remaining": "0", "Retry-After": "7\r\nX: y"}, 0.030)
    with pytest.raises(BudgetSpent):
        budget.sending("B")
    assert (budget.sent, budget.refused, dict(budget.by_operation)) == (2, 1, {"A": 2})
    assert budget.timings() == {"A": {"count": 2, "min": 10.0, "median": 20.0, "max": 30.0}}
    assert budget.rate_headers["X-RateLimit-Remaining"] == {"answers": 1, "first": "9", "last": "9"}
    assert budget.rate_headers["Retry-After"]["first"] == "7\\r\\nX: y"  # escaped: one line
    assert "Content-Type" not in budget.rate_headers


@pytest.mark.parametrize("api", ["hsapi", "escapianet"])
def test_no_more_requests_than_the_budget_reach_escapia(tmp_path, sandbox, api):
    config, account = config_for(tmp_path, sandbox, api)
    report = diagnose(config, account, limit=4)
    assert sandbox.request_count() == 4 == report.requests["sent"]
    assert report.requests["refused"] >= 1
    if api == "hsapi":  # EscapiaNET: what was read is compared; the rest is said not read
        assert report.findings["end_date"].status == "skipped"
    assert "budget of 4 requests is spent" in report.as_text()


def test_letters_outside_auio_are_flagged(tmp_path, sandbox):
    sandbox.soap_fault_mode = "bad_chars"  # the first U of every calendar becomes an X
    config, account = config_for(tmp_path, sandbox, "escapianet")
    letters = diagnose(config, account).findings["letters"]
    assert letters.status == "warning"
    assert letters.data["outside_AUIO"]["X"] >= 1
    assert "'X'" in letters.summary


def test_a_calendar_that_covers_less_than_asked_is_a_warning(tmp_path, sandbox):
    config, account = config_for(tmp_path, sandbox, "escapianet")
    path = config.path
    path.write_text(path.read_text().replace("\nhttp:", "\nfeeds: {future_days: 1100}\nhttp:"))
    config = load_config(path)
    span = diagnose(config, config.accounts[0]).findings["calendar_span"]
    assert span.status == "warning"  # the sandbox's calendars cover at most 764 nights
    assert span.data["batch"]["answers_short_of_future"] == len(sandbox.unit_ids())
    assert span.data["per_unit"]["answers_short_of_future"] == span.data["per_unit"]["answers"] > 0


def hsapi_source(tmp_path) -> HsapiSource:
    account = HsapiAccount(name="a", pmcid="1020", client_id="id", client_secret="s3cret", base_url=BASE,
                           http=HttpPolicy(retry_attempts=1, retry_initial_wait=0, retry_max_wait=0))
    return HsapiSource(account, tmp_path)


def test_work_orders_not_granted_is_a_warning(tmp_path, rsps):
    rsps.get(f"{BASE}/hsapi/auth/token", json=TOKEN)
    rsps.post(f"{BASE}/hsapi/SearchWorkOrders", status=403, json={"message": "Forbidden"})
    finding = _work_orders(hsapi_source(tmp_path))
    assert (finding.status, finding.data) == ("warning", {"readable": False, "http_status": 403})


def test_readable_work_orders_are_counted_with_the_rate_headers_seen(tmp_path, rsps):
    rsps.get(f"{BASE}/hsapi/auth/token", json=TOKEN)
    orders = [{"$id": "2", "workOrderNumber": "W1", "workOrderRemovesUnitFromAvailability": True},
              {"$id": "3", "workOrderNumber": "W2", "workOrderRemovesUnitFromAvailability": False}]
    rsps.post(f"{BASE}/hsapi/SearchWorkOrders", body=json.dumps({"results": orders, "totalCount": 7}),
              headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "98"},
              content_type="application/json")
    source = hsapi_source(tmp_path)
    budget = source.http.observer = RequestBudget()
    finding = _work_orders(source)
    assert (finding.status, finding.data) == ("ok", {"readable": True, "count": 7, "read": 2, "blocking": 1})
    assert {name: seen["last"] for name, seen in budget.rate_headers.items()} == {
        "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "98"}
    assert budget.sent == 2  # the token request counts too


def test_an_account_without_units_says_so_and_skips_the_calendars(tmp_path, sandbox):
    sandbox.soap_fault_mode = "empty_units"
    config, account = config_for(tmp_path, sandbox, "escapianet")
    report = diagnose(config, account)
    assert report.findings["units"].status == "warning"
    assert {key: f.status for key, f in report.findings.items() if key != "units"} == {
        "calendar_span": "skipped", "letters": "skipped", "holds": "skipped", "unit_vs_batch": "skipped"}
    assert report.requests["sent"] == 1
