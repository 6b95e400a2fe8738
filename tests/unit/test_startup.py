"""What an HSAPI sync loads: not the modules only other accounts or settings use (each
tick is a new process, and importing is a third of a quiet tick's CPU)."""

import subprocess
import sys

# Loaded only for an EscapiaNET account (its SOAP client and XML stack), with `channels:`
# or `report_html:` configured, or by the commands that need them.
ONLY_WHEN_USED = ("escapia_ical.sources.escapianet", "escapia_ical.sources.escapianet_decode", "defusedxml",
                  "escapia_ical.channels", "escapia_ical.report", "prometheus_client", "jsonschema")


def test_an_hsapi_sync_loads_no_module_it_does_not_use():
    code = ("import sys\n"
            "from escapia_ical import cli\n"
            "from escapia_ical.config import HsapiAccount\n"
            "from escapia_ical.sync import quiet, runner\n"
            "quiet.prefetch_batch(object(), HsapiAccount('a', pmcid='1', client_id='i', client_secret='s'),"
            " None, 10)  # what every account's run calls\n"
            f"print(' '.join(sorted(m for m in sys.modules if m.startswith({ONLY_WHEN_USED!r}))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=True).stdout.split()
    assert loaded == []
    check = "import sys; from escapia_ical.sources import escapianet; print('defusedxml' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip() == "True", "the test names what EscapiaNET loads"


def test_an_hsapi_account_never_looks_at_escapianet_s_module(monkeypatch):
    """Accounts run in parallel: another account's thread may be loading EscapiaNET's
    module (in sys.modules, not yet whole) while an HSAPI account asks for its batch."""
    import types

    from escapia_ical.config import HsapiAccount
    from escapia_ical.sync import quiet
    monkeypatch.setitem(sys.modules, "escapia_ical.sources.escapianet",
                        types.ModuleType("escapia_ical.sources.escapianet"))  # partly loaded: no class yet
    quiet.prefetch_batch(object(), HsapiAccount("a", pmcid="1", client_id="i", client_secret="s"), None, 10)
