"""The operator samples we ship: systemd units that systemd itself accepts."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "config" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(SYSTEMD / name)
    return parser


def test_timer_runs_every_five_minutes_and_catches_up():
    timer = unit("escapia-ical.timer")["Timer"]
    assert timer["OnCalendar"] == "*:0/5" and timer["Persistent"] == "true"


def test_service_is_a_hardened_oneshot_sync():
    service = unit("escapia-ical.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].split()[1:3] == ["sync", "--config"]
    for key, value in [("NoNewPrivileges", "true"), ("ProtectSystem", "strict"), ("ProtectHome", "true"),
                       ("PrivateTmp", "true"), ("StateDirectory", "escapia-ical"),
                       ("SuccessExitStatus", "75")]:
        assert service[key] == value, key
    assert "LoadCredential" in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    for name in ("escapia-ical.service", "escapia-ical.timer"):
        text = (SYSTEMD / name).read_text().replace("/opt/escapia-ical/.venv/bin/escapia-ical", "/bin/true")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
