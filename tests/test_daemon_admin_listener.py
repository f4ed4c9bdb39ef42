"""Admin and ops routes on their own listener, drills off by default, a long
admin token required, failed admin authentications limited and counted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.daemon import ROOT, Daemon

TOKEN = "t" * 40


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    running = Daemon({"ADMIN_TOKEN": TOKEN, "CRASH_DRILLS_ENABLED": "false"})
    try:
        yield running.start()
    finally:
        running.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def counter(metrics: str, reason: str) -> float:
    match = re.search(rf'^admin_auth_failures_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    return float(match[1]) if match else 0.0


def test_admin_routes_live_on_the_admin_listener_only(daemon: Daemon) -> None:
    public, admin = daemon.url, daemon.admin_url
    for base in (public, admin):  # load balancers probe the public one; `status` the admin one
        assert requests.get(base + "/healthz", timeout=5).json() == {"status": "alive"}
        assert requests.get(base + "/readyz", timeout=5).json() == {"ready": True}
    for path in ("/api/admin/tree", "/api/admin/swift-metrics", "/api/signals/x"):
        assert requests.get(public + path, headers=auth(), timeout=5).status_code == 404, path
    assert requests.post(public + "/api/admin/crash/health_monitor", headers=auth(),
                         timeout=5).status_code == 404
    tree = requests.get(admin + "/api/admin/tree", headers=auth(), timeout=5)
    assert tree.status_code == 200 and "admin_api" in tree.json()["children"]
    assert requests.get(admin + "/api/webhook/tradingview/x", timeout=5).status_code == 404

    status = daemon.cli("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tree"]["children"]["webhook"]["state"] == "running"


def test_crash_drills_are_off_unless_enabled(daemon: Daemon) -> None:
    refused = requests.post(daemon.admin_url + "/api/admin/crash/health_monitor",
                            headers=auth(), timeout=5)
    assert refused.status_code == 403 and "CRASH_DRILLS_ENABLED" in refused.json()["error"]
    drill = daemon.cli("crash", "health_monitor")
    assert drill.returncode == 1 and "CRASH_DRILLS_ENABLED" in drill.stdout
    assert 'supervisor_restarts_total{actor="health_monitor"} 0.0' in daemon.metrics()


def test_failed_admin_authentications_are_limited_and_counted(daemon: Daemon) -> None:
    url = daemon.admin_url + "/api/admin/tree"
    before = daemon.metrics()
    answers = [requests.get(url, headers=auth("wrong" * 8), timeout=5).status_code
               for _ in range(10)]
    assert answers == [401] * 10
    limited = requests.get(url, headers=auth("wrong" * 8), timeout=5)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # refused before the token is looked at: a limited address learns nothing, right or wrong
    assert requests.get(url, headers=auth(), timeout=5).status_code == 429
    after = daemon.metrics()
    assert counter(after, "wrong") - counter(before, "wrong") == 10
    assert counter(after, "rate_limited") - counter(before, "rate_limited") == 2
    assert "wrong" * 8 not in daemon.log() and TOKEN not in daemon.log()
    # one budget per client address for every admin-token route, on either listener
    public = requests.post(daemon.url + "/api/trading-bots/x/manual-trade", timeout=5)
    assert public.status_code == 429


@pytest.mark.parametrize("token", ["short", "x" * 31])
def test_a_short_admin_token_stops_start_up_with_one_line(token: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "runtime.py"), "run"],
                            env={"PATH": "/usr/bin:/bin", "STATE_DIR": str(tmp_path),
                                 "ADMIN_TOKEN": token},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ADMIN_TOKEN" in lines[0] and "32" in lines[0]
    assert token not in result.stderr
