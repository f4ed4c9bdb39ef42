"""The unit's resource limits, and its sandboxing score does not get worse.

`systemd-analyze security --offline=yes` scores a unit file without installing it (systemd 250
and later); the test scores a copy whose ExecStart is /bin/true, as test_systemd.py verifies one.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.artifacts import UNIT
from tests.deploy.test_systemd import SYSTEMD_ANALYZE, needs_systemd

MAX_EXPOSURE = 1.5  # the score before the limits were added; hardening may lower it, never raise it


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def _comment_before(directive: str) -> str:
    """The comment lines right above a directive (why it is there)."""
    lines = UNIT.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{directive}="))
    comments = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        comments.append(line)
    return " ".join(reversed(comments))


def test_no_core_dumps_and_bounded_descriptors_and_tasks() -> None:
    service = _service()
    assert service["LimitCORE"] == "0"
    assert int(service["LimitNOFILE"]) >= 4096
    assert 256 <= int(service["TasksMax"]) <= 65536
    assert "key" in _comment_before("LimitCORE")
    for directive in ("LimitNOFILE", "TasksMax"):
        assert _comment_before(directive), f"{directive} has no comment saying why"


@needs_systemd
def test_systemd_analyze_security_exposure_stays_at_most_1_5(tmp_path: Path) -> None:
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text(), flags=re.M)
    path = tmp_path / UNIT.name
    path.write_text(text)
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    if found is None and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze cannot score a unit file offline (systemd < 250)")
    assert found, result.stdout + result.stderr
    assert float(found[1]) <= MAX_EXPOSURE
