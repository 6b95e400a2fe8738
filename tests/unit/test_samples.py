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
                       ("PrivateTmp", "true"), ("PrivateDevices", "true"), ("CapabilityBoundingSet", ""),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("SuccessExitStatus", "75")]:
        assert service[key] == value, key
    # Writable: state_dir and output_dir only (tests/unit/test_layout.py checks which folders).
    assert len(service["ReadWritePaths"].split()) == 2
    assert "LoadCredential" in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    for name in ("escapia-ical.service", "escapia-ical.timer"):
        text = (SYSTEMD / name).read_text().replace("/opt/escapia-ical/.venv/bin/escapia-ical", "/bin/true")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_rates_the_service_as_exposed_little(tmp_path):
    """systemd's own exposure score (0 = locked down, 10 = exposed) stays at most 2.0 ("OK")."""
    text = (SYSTEMD / "escapia-ical.service").read_text().replace("/opt/escapia-ical/.venv/bin/escapia-ical",
                                                                  "/bin/true")
    (tmp_path / "escapia-ical.service").write_text(text)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager",
                             str(tmp_path / "escapia-ical.service")], capture_output=True, text=True, timeout=60)
    if "--offline" in result.stderr:  # systemd < 250: no offline analysis
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    assert result.returncode == 0, result.stdout[-400:] + result.stderr
