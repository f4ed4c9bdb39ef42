"""The systemd unit and its environment example.

`systemd-analyze verify` checks what it can without installing the unit: the syntax of every
directive and its value (an unknown key or a bad value is only a warning, so the test treats any
line about the unit as a failure), the [Install] section, and that ExecStart is an executable.
It does not check: that User/Group exist (resolved only at start), that the LoadCredential
source exists, or what the sandboxing options do to a running daemon; the last needs a real
host. /opt/quantumvault is not installed here, so the test verifies a copy of the unit whose
ExecStart runs /bin/true with the same arguments; everything else is the shipped file.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from config.settings import SETTINGS, load_settings
from tests.deploy.artifacts import ENV_EXAMPLE, UNIT

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                   reason="systemd-analyze is not available on this machine")


def _verify(unit_text: str, tmp_path: Path) -> list[str]:
    """Problems systemd-analyze reports for the unit, with ExecStart's binary set to /bin/true."""
    text, count = re.subn(r"^ExecStart=\S+", "ExecStart=/bin/true", unit_text, flags=re.M)
    assert count == 1
    path = tmp_path / UNIT.name
    path.write_text(text)
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if UNIT.name in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}: {output}")
    return problems


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


@needs_systemd
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert _verify(UNIT.read_text(), tmp_path) == []


@needs_systemd
def test_systemd_analyze_verify_reports_a_misspelt_directive(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSex=30")
    assert any("WatchdogSex" in line for line in _verify(broken, tmp_path))


def test_the_unit_has_what_issue_7_asks_for() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root") and service["Group"] not in ("", "root")
    assert service["StateDirectory"] == "quantumvault"
    assert service["LoadCredential"].startswith("server-key:")
    assert service["ExecStart"].endswith(" run")
    for option in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                   "RestrictSUIDSGID", "LockPersonality"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    # Risky for CPython's ctypes/cffi callbacks and PostgreSQL's JIT: left out on purpose.
    assert "MemoryDenyWriteExecute" not in service


def test_the_watchdog_is_fed_often_enough() -> None:
    watchdog_s = int(_unit()["Service"]["WatchdogSec"])
    interval_ms = int(_env_example()["HEALTH_INTERVAL_MS"])
    assert interval_ms * 3 <= watchdog_s * 1000


def _env_example() -> dict[str, str]:
    """The assignments, parsed as systemd's EnvironmentFile= does for unquoted values."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, value = line.partition("=")
        assert sep, line
        values[name.strip()] = value.strip()
    return values


def test_env_example_is_valid_for_systemd_and_the_daemon() -> None:
    values = _env_example()
    for name, value in values.items():
        # systemd keeps an inline "# comment" as part of the value; quotes change the value.
        assert "#" not in value and '"' not in value and "'" not in value, name
    known = {s.name for s in SETTINGS}
    assert set(values) <= known, sorted(set(values) - known)
    load_settings(values)  # raises ConfigError on an invalid value


def test_env_example_lists_every_setting_with_its_default() -> None:
    """In sync with `quantumvault --help`: every variable, commented-out lines at the default."""
    text = ENV_EXAMPLE.read_text()
    for setting in SETTINGS:
        line = re.search(rf"^(#?){setting.name}=(.*)$", text, flags=re.M)
        assert line, f"{setting.name} missing from {ENV_EXAMPLE.name}"
        if line[1]:
            assert line[2] == setting.default, setting.name
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    assert names == {s.name for s in SETTINGS}
