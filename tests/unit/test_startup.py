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
            "from escapia_ical.sync import quiet, runner\n"
            "quiet.prefetch_batch(object(), None, None, 10)  # what every account's run calls\n"
            f"print(' '.join(sorted(m for m in sys.modules if m.startswith({ONLY_WHEN_USED!r}))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=True).stdout.split()
    assert loaded == []
    check = "import sys; from escapia_ical.sources import escapianet; print('defusedxml' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip() == "True", "the test names what EscapiaNET loads"
