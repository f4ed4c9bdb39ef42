"""The daemon as systemd runs it: embedded database, ready/watchdog/stopping, drills, exit codes."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest
import requests

from storage.migrations import available
from tests.daemon import Daemon, free_port


@pytest.fixture
def daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    env = getattr(request, "param", {})
    running = Daemon(env)
    try:
        yield running.start()
    finally:
        running.stop()


def restarts(metrics: str, actor: str) -> float:
    match = re.search(rf'^supervisor_restarts_total{{actor="{actor}"}} (\S+)$', metrics, re.M)
    return float(match[1]) if match else 0.0


def test_runs_on_the_embedded_database_and_answers_health(daemon: Daemon) -> None:
    assert "DATABASE_URL" not in daemon.env or not daemon.env["DATABASE_URL"]
    assert daemon.get("/healthz").json() == {"status": "alive"}
    ready = daemon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}  # anonymous: no tree, no bot ids
    token = (daemon.dir / "state" / "admin_token").read_text().strip()
    assert requests.get(daemon.url + "/api/admin/tree", timeout=5).status_code == 404
    tree = requests.get(daemon.admin_url + "/api/admin/tree", timeout=5,
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert list(tree["children"]) == [
        "health_monitor", "flags", "legacy_executor", "venue_state", "fill_tracker",
        "swift_gateway", "profit_share", "lease_keeper", "bots",
        "retry_scheduler", "fanout", "intake_listener", "intake_journal", "admin_api",
        "webhook"]
    assert (daemon.dir / "state" / "pgdata" / "PG_VERSION").exists()
    daemon.notify.wait_for("WATCHDOG=1")
    status = daemon.cli("status")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["ready"] is True and list(report["tree"]["children"]) == list(tree["children"])
    assert 'actor_mailbox_depth{actor="webhook"}' in daemon.metrics()


def test_crash_drill_restarts_the_actor_and_counts_it(daemon: Daemon) -> None:
    assert restarts(daemon.metrics(), "health_monitor") == 0
    drill = daemon.cli("crash", "health_monitor")
    assert drill.returncode == 0, drill.stderr
    daemon.notify.wait_for("root: restarted health_monitor")
    assert restarts(daemon.metrics(), "health_monitor") == 1
    drill = daemon.cli("crash", "webhook")  # the server itself: a fresh listener comes up
    assert drill.returncode == 0, drill.stderr
    daemon.notify.wait_for("root: restarted webhook")
    assert daemon.get("/readyz").status_code == 200
    assert restarts(daemon.metrics(), "webhook") == 1


def test_admin_endpoints_need_the_token(daemon: Daemon) -> None:
    anonymous = requests.post(daemon.admin_url + "/api/admin/crash/health_monitor", timeout=5)
    wrong = requests.post(daemon.admin_url + "/api/admin/crash/health_monitor", timeout=5,
                          headers={"Authorization": "Bearer nope"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert restarts(daemon.metrics(), "health_monitor") == 0
    assert daemon.cli("crash", "no_such_actor").returncode == 1


def test_sigterm_stops_the_tree_in_order_and_exits_zero(daemon: Daemon) -> None:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    daemon.notify.wait_for("STOPPING=1")
    assert daemon.wait_exit() == 0
    assert "stopped (exit 0)" in daemon.log()


@pytest.mark.parametrize("daemon", [{"SUPERVISOR_MAX_RESTARTS": "0"}], indirect=True)
def test_root_giving_up_exits_non_zero_for_systemd(daemon: Daemon) -> None:
    assert daemon.cli("crash", "health_monitor").returncode == 0
    assert daemon.wait_exit() == 3
    assert "supervision tree gave up" in daemon.log()


def test_an_invalid_setting_stops_start_up_with_one_line_naming_it() -> None:
    bad = Daemon({"METRICS_PORT": "seventy"})
    try:
        result = bad.cli("run")
    finally:
        bad.notify.close()
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "METRICS_PORT" in result.stderr


def test_help_lists_every_setting_with_its_default() -> None:
    result = Daemon().cli("--help")
    assert result.returncode == 0
    for name in ("DATABASE_URL", "STATE_DIR", "WEBHOOK_HOST", "WEBHOOK_PORT", "METRICS_PORT",
                 "ADMIN_TOKEN", "LOG_LEVEL", "SWIFT_ORDER_TIMEOUT_MS", "SWIFT_ENABLED"):
        assert name in result.stdout
    assert "[3000]" in result.stdout  # SWIFT_ORDER_TIMEOUT_MS default


def test_migrate_against_a_database_url_is_idempotent(database_url: str) -> None:
    tool = Daemon({"DATABASE_URL": database_url})
    try:
        first, second = tool.cli("migrate"), tool.cli("migrate")
    finally:
        tool.notify.close()
    every = [m.version for m in available()]
    assert first.returncode == 0 and json.loads(first.stdout)["applied"] == every
    assert second.returncode == 0 and json.loads(second.stdout)["applied"] == []


def test_on_the_sandbox_venue_the_daemon_runs_the_sandbox_child_and_stops_it(
        daemon: Daemon) -> None:
    sandbox = f"http://127.0.0.1:{daemon.env['SANDBOX_PORT']}"
    assert requests.get(f"{sandbox}/health", timeout=5).text == "ok"
    slot = requests.post(f"{sandbox}/", timeout=5,
                         json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"}).json()
    assert isinstance(slot["result"], int)
    assert "venue profile: {'venue': 'sandbox'" in daemon.log()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox}/health", timeout=5)


def test_a_paused_venue_without_network_says_so_and_still_takes_alerts() -> None:
    """VENUE=drift-mainnet with nothing answering (closed loopback ports stand
    in for "no network"): the paused program is a warning at start, Swift and RPC unreachable are
    warnings at the first probe (STATUS= for systemd), and /readyz stays 200 with the reason."""
    closed = f"http://127.0.0.1:{free_port()}"
    daemon = Daemon({"VENUE": "drift-mainnet", "SWIFT_API_URL": closed,
                     "RPC_PRIMARY_URL": closed})
    try:
        daemon.start()
        assert "venue drift-mainnet: its program is paused since 2026-04-01" in daemon.log()
        daemon.notify.wait_for("STATUS=degraded: swift unreachable")
        daemon.notify.wait_for("STATUS=degraded: rpc unreachable")
        log = daemon.log()
        assert "dependency swift unreachable" in log and "dependency rpc unreachable" in log
        ready = daemon.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True  # alerts are durable
        reason = ready.json()["reason"]
        assert "paused since 2026-04-01" in reason
        assert "Swift unreachable" in reason and "RPC unreachable" in reason
        assert closed not in reason
        status = daemon.cli("status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["reason"] == reason
        warnings = [line for line in status.stderr.splitlines() if "warning:" in line]
        assert any("its program is paused since 2026-04-01" in w for w in warnings), warnings
        assert any("RPC unreachable" in w for w in warnings), warnings
        assert any("Swift unreachable" in w for w in warnings), warnings
    finally:
        daemon.stop()
