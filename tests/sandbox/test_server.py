"""Server lifecycle: port 0, loopback only, the ticking clock, routing basics."""

from __future__ import annotations

import pytest
import requests

from sandbox import cli
from sandbox.server import SandboxServer
from tests.sandbox.helpers import HTTP_TIMEOUT


def test_port_zero_binds_a_free_port() -> None:
    with SandboxServer("127.0.0.1", 0, slot_ms=0) as a, SandboxServer("127.0.0.1", 0,
                                                                        slot_ms=0) as b:
        assert a.port > 0 and b.port > 0 and a.port != b.port
        assert a.url == f"http://127.0.0.1:{a.port}"
        assert b.backup_rpc_url.endswith("/backup")


def test_only_loopback_hosts() -> None:
    with pytest.raises(ValueError):
        SandboxServer("0.0.0.0", 0)
    assert cli.main(["--host", "0.0.0.0", "--port", "0"]) == 2


def test_clock_ticks_on_its_own() -> None:
    with SandboxServer("127.0.0.1", 0, slot_ms=10) as server:
        start = server.exchange.slot
        assert server.exchange.clock.wait_for_slot(start + 5, timeout=5.0)


def test_unknown_route_and_wrong_method(sandbox: SandboxServer) -> None:
    url = sandbox.url
    resp = requests.get(f"{url}/nope", timeout=HTTP_TIMEOUT)
    assert (resp.status_code, resp.text) == (404, "No route /nope")
    assert requests.get(f"{url}/", timeout=HTTP_TIMEOUT).status_code == 405
    assert requests.get(f"{url}/orders", timeout=HTTP_TIMEOUT).status_code == 405


def test_rpc_parse_error_and_batch(sandbox: SandboxServer) -> None:
    url = sandbox.url
    bad = requests.post(url, data="{", timeout=HTTP_TIMEOUT).json()
    assert bad["error"]["code"] == -32700
    batch = requests.post(url, json=[{"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                                     {"jsonrpc": "2.0", "id": 2, "method": "getHealth"}],
                          timeout=HTTP_TIMEOUT).json()
    assert [r["id"] for r in batch] == [1, 2]
    assert batch[1]["result"] == "ok"


def test_step_endpoint_and_stats(sandbox: SandboxServer) -> None:
    url = sandbox.url
    before = sandbox.exchange.slot
    resp = requests.post(f"{url}/sandbox/step", json={"slots": 3}, timeout=HTTP_TIMEOUT)
    assert resp.json()["slot"] == before + 3
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["slot"] == before + 3


def test_cli_runs_a_sandbox_process() -> None:
    """`python -m sandbox.cli --port 0` prints its URL and serves until terminated."""
    import subprocess
    import sys

    import gevent

    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "--port", "0", "--seed", "3",
                             "--slot-ms", "50"], stdout=subprocess.PIPE, text=True)
    try:
        with gevent.Timeout(20):
            line = proc.stdout.readline()
        assert line.startswith("sandbox ready url=http://127.0.0.1:"), line
        url = line.split()[2].removeprefix("url=")
        assert requests.get(f"{url}/health", timeout=HTTP_TIMEOUT).text == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_config_endpoint(sandbox: SandboxServer) -> None:
    url = sandbox.url
    resp = requests.post(f"{url}/sandbox/config", json={"slippage_bps": 12},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200 and resp.json()["slippage_bps"] == 12.0
    assert sandbox.exchange.config.slippage_bps == 12.0
    bad = requests.post(f"{url}/sandbox/config", json={"slipage_bps": 1}, timeout=HTTP_TIMEOUT)
    assert bad.status_code == 400
    bad = requests.post(f"{url}/sandbox/config", json={"slippage_bps": "x"},
                        timeout=HTTP_TIMEOUT)
    assert bad.status_code == 400
