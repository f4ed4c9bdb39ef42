"""Fault injection over HTTP and the CLI: status overrides, timeouts, 412 health, RPC outages."""

from __future__ import annotations

import time

import pytest
import requests
from solders.keypair import Keypair

from sandbox import cli
from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    auction_around,
    current_slot,
    faucet,
    fetch_user,
    oracle_price,
    order_params,
    perp_base,
    post_order,
    signed_order,
)


def _faults(url: str, **changes: object) -> dict:
    resp = requests.post(f"{url}/sandbox/faults", json=changes, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _order(url: str, kp: Keypair, uuid: bytes = b"faulty01") -> tuple[dict, bytes]:
    params = order_params(base=100_000_000, auction=auction_around(oracle_price(url), "long"))
    return signed_order(kp, params, current_slot(url), uuid)


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_swift_status_override(sandbox: SandboxServer, status: int) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _faults(url, swift_status=status, swift_status_count=1)
    body, _ = _order(url, kp)
    resp = post_order(url, body)
    assert resp.status_code == status
    if status == 500:
        assert resp.json()["message"] == "Failed to deliver message"
    if status == 429:
        assert resp.headers.get("Retry-After") == "1"
    assert post_order(url, body).status_code == 200  # the override lasted one request
    stats = requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()
    assert stats["by_authority"][str(kp.pubkey())]["swift_orders_accepted"] == 1


def test_swift_timeout_with_unknown_outcome(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _faults(url, swift_timeout=True, hang_ms=400, swift_timeout_process=True)
    body, _ = _order(url, kp)
    with pytest.raises(requests.Timeout):
        requests.post(f"{url}/orders", json=body, timeout=0.1)

    def accepted() -> bool:
        by = sandbox.exchange.stats.by_authority.get(str(kp.pubkey()), {})
        return by.get("swift_orders_accepted", 0) == 1

    # the client gave up, the venue still took the order
    assert sandbox.exchange.stats.wait_for(accepted, timeout=5.0)
    requests.delete(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT)
    sandbox.step(5)
    assert perp_base(fetch_user(url, kp.pubkey())) == 100_000_000


def test_swift_timeout_without_processing_answers_504(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _faults(url, swift_timeout=True, hang_ms=50, swift_timeout_process=False)
    body, _ = _order(url, kp)
    assert post_order(url, body).status_code == 504
    assert sandbox.exchange.stats.totals.get("swift_orders_received", 0) == 0


def test_health_412(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _faults(url, health_412=True)
    resp = requests.get(f"{url}/health", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 412
    assert "slot_sub_healthy=false" in resp.text and "ws_sub_healthy=" in resp.text
    assert requests.get(f"{url}/confirmation/health", timeout=HTTP_TIMEOUT).status_code == 412
    requests.delete(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT)
    assert requests.get(f"{url}/health", timeout=HTTP_TIMEOUT).status_code == 200


@pytest.mark.parametrize("mode", ["503", "reset"])
def test_rpc_primary_down_backup_up(sandbox: SandboxServer, mode: str) -> None:
    url = sandbox.url
    _faults(url, rpc_primary_down=True, rpc_down_mode=mode)
    call = {"jsonrpc": "2.0", "id": 1, "method": "getSlot"}
    if mode == "503":
        assert requests.post(f"{url}/", json=call, timeout=HTTP_TIMEOUT).status_code == 503
    else:
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{url}/", json=call, timeout=HTTP_TIMEOUT)
    backup = requests.post(f"{url}/backup", json=call, timeout=HTTP_TIMEOUT).json()
    assert backup["result"] == sandbox.exchange.slot
    _faults(url, clear=True)
    assert requests.post(f"{url}/", json=call, timeout=HTTP_TIMEOUT).status_code == 200


def test_rpc_hang_exceeds_client_timeout(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _faults(url, rpc_primary_down=True, rpc_down_mode="hang", hang_ms=300)
    with pytest.raises(requests.Timeout):
        requests.post(f"{url}/", json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                      timeout=0.1)


def test_latency_is_added(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _faults(url, swift_latency_ms=150)
    t0 = time.monotonic()
    requests.get(f"{url}/health", timeout=HTTP_TIMEOUT)
    assert time.monotonic() - t0 >= 0.15


def test_makers_paused_blocks_fills(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    _faults(url, makers_paused=True)
    body, _ = _order(url, kp)
    assert post_order(url, body).status_code == 200
    sandbox.step(60)
    assert perp_base(fetch_user(url, kp.pubkey())) == 0


def test_unknown_fault_knob_is_400_and_changes_nothing(sandbox: SandboxServer) -> None:
    url = sandbox.url
    resp = requests.post(f"{url}/sandbox/faults", json={"health_412": True, "typo": 1},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400
    resp = requests.post(f"{url}/sandbox/faults", json={"swift_status": 418},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400
    assert requests.get(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT).json()["health_412"] \
        is False


def test_cli_sets_and_clears_faults(sandbox: SandboxServer, capsys) -> None:
    url = sandbox.url
    assert cli.main(["faults", "--url", url, "--swift-status", "503", "--health-412",
                     "true"]) == 0
    assert sandbox.exchange.faults.swift_status == 503
    assert sandbox.exchange.faults.health_412 is True
    assert cli.main(["faults", "--url", url, "--clear"]) == 0
    assert sandbox.exchange.faults.swift_status is None
    assert cli.main(["faults", "--url", url]) == 0
    assert '"health_412": false' in capsys.readouterr().out
    kp = Keypair()
    assert cli.main(["faucet", "--url", url, "--authority", str(kp.pubkey()),
                     "--quote", "250"]) == 0
    assert fetch_user(url, kp.pubkey()).spot_positions[0].scaled_balance == 250_000_000 * 1_000
    assert cli.main(["liquidity", "--url", url, "--market-index", "0", "--mode", "none"]) == 0
    assert sandbox.exchange.liquidity.get(0).mode == "none"
    assert cli.main(["stats", "--url", url]) == 0
    assert cli.main(["faults", "--url", "http://127.0.0.1:9", "--clear"]) == 2


def test_fault_values_are_type_checked(sandbox: SandboxServer) -> None:
    url = sandbox.url
    for bad in ({"health_412": "yes"}, {"latency_ms": "10"}, {"swift_status": True},
                {"rpc_down_mode": "explode"}, {"hang_ms": 10**9}):
        resp = requests.post(f"{url}/sandbox/faults", json=bad, timeout=HTTP_TIMEOUT)
        assert resp.status_code == 400, bad
    assert sandbox.exchange.faults.as_dict() == type(sandbox.exchange.faults)().as_dict()


def test_swift_makers_paused_leaves_on_chain_orders_filling(sandbox: SandboxServer) -> None:
    url = sandbox.url
    _faults(url, swift_makers_paused=True)
    assert requests.get(f"{url}/sandbox/faults", timeout=5).json()["swift_makers_paused"] is True
    _faults(url, clear=True)
    assert requests.get(f"{url}/sandbox/faults", timeout=5).json()["swift_makers_paused"] is False
