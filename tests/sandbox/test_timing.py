"""Venue timing knobs over real HTTP: RPC rate limit (429), latency flags that survive clearing,
latency that does not serialize concurrent requests, the Swift POST log, per-method RPC
counters, fill wall times, the Clock sysvar, and the flags reaching the daemon's child."""

from __future__ import annotations

import base64
import time
from typing import Any

import base58
import gevent
import pytest
import requests
from solders.clock import Clock
from solders.keypair import Keypair

from config.settings import ConfigError, load_settings
from sandbox import cli
from sandbox.server import SandboxServer
from tests.sandbox.helpers import (
    HTTP_TIMEOUT,
    auction_around,
    current_slot,
    faucet,
    oracle_price,
    order_params,
    post_order,
    signed_order,
)
from venue.process_venue import ProcessVenue

CLOCK = "SysvarC1ock11111111111111111111111111111111"
SYSVAR_OWNER = "Sysvar1111111111111111111111111111111111111"


def _call(method: str = "getSlot", call_id: Any = 1, params: list | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or []}


def _stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/sandbox/stats", timeout=HTTP_TIMEOUT).json()


def _faults(url: str, **changes: Any) -> dict[str, Any]:
    resp = requests.post(f"{url}/sandbox/faults", json=changes, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_rpc_rate_limit_answers_429_like_a_provider() -> None:
    with SandboxServer("127.0.0.1", 0, slot_ms=0, faults={"rpc_rps_limit": 5}) as server:
        url = server.url
        # a batch costs one token per call: 10 calls on a full bucket of 5 leave it in debt
        batch = requests.post(url, json=[_call(call_id=i) for i in range(10)],
                              timeout=HTTP_TIMEOUT)
        assert batch.status_code == 200 and len(batch.json()) == 10
        refused = requests.post(url, json=_call(call_id=42), timeout=HTTP_TIMEOUT)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json() == {"jsonrpc": "2.0", "id": 42, "error": {
            "code": 429, "message": "Too many requests for a specific RPC call"}}
        refused_batch = requests.post(url, json=[_call(), _call()], timeout=HTTP_TIMEOUT)
        assert refused_batch.status_code == 429 and refused_batch.json()["id"] is None
        # the backup path has its own bucket
        backup = requests.post(server.backup_rpc_url, json=_call("getHealth"),
                               timeout=HTTP_TIMEOUT)
        assert backup.status_code == 200 and backup.json()["result"] == "ok"
        stats = _stats(url)
        assert stats["totals"]["rpc_rate_limited"] == 2
        assert stats["totals"]["rpc_rate_limited_primary"] == 2
        assert "rpc_rate_limited_backup" not in stats["totals"]
        assert stats["rpc_calls"] == {"getSlot": 10, "getHealth": 1}  # refused: not run


def test_rpc_rate_limit_is_a_runtime_fault_too(sandbox: SandboxServer) -> None:
    url = sandbox.url
    assert requests.post(url, json=[_call()] * 3, timeout=HTTP_TIMEOUT).status_code == 200
    assert _faults(url, rpc_rps_limit=2)["rpc_rps_limit"] == 2
    assert requests.post(url, json=[_call()] * 3, timeout=HTTP_TIMEOUT).status_code == 200
    assert requests.post(url, json=_call(), timeout=HTTP_TIMEOUT).status_code == 429
    _faults(url, rpc_rps_limit=0)
    assert requests.post(url, json=_call(), timeout=HTTP_TIMEOUT).status_code == 200
    resp = requests.post(f"{url}/sandbox/faults", json={"rpc_rps_limit": -1},
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400


def test_start_up_timing_is_the_baseline_that_clearing_returns_to() -> None:
    start = {"rpc_latency_ms": 40, "swift_latency_ms": 30, "rpc_rps_limit": 50}
    with SandboxServer("127.0.0.1", 0, slot_ms=0, faults=start) as server:
        url = server.url
        shown = requests.get(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT).json()
        assert {k: shown[k] for k in start} == start
        _faults(url, rpc_latency_ms=0, health_412=True)
        shown = _faults(url, clear=True)
        assert {k: shown[k] for k in start} == start and shown["health_412"] is False
        _faults(url, swift_latency_ms=0)
        shown = requests.delete(f"{url}/sandbox/faults", timeout=HTTP_TIMEOUT).json()
        assert {k: shown[k] for k in start} == start
        t0 = time.monotonic()
        requests.post(url, json=_call(), timeout=HTTP_TIMEOUT)
        assert time.monotonic() - t0 >= 0.04
    with pytest.raises(ValueError):
        SandboxServer("127.0.0.1", 0, slot_ms=0, faults={"rpc_latency_ms": -5})


def test_swift_latency_is_per_request_not_serialized(sandbox: SandboxServer) -> None:
    """200 concurrent POST /orders each wait ~200 ms, and the sandbox holds many of them at
    once (serialized, it would hold one at a time: 40 s in all)."""
    url = sandbox.url
    _faults(url, swift_latency_ms=200)
    session_count = 200

    def post() -> float:
        started = time.monotonic()
        resp = requests.post(f"{url}/orders", data=b"{}", timeout=HTTP_TIMEOUT,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 422
        return time.monotonic() - started

    jobs = [gevent.spawn(post) for _ in range(session_count)]
    gevent.joinall(jobs, raise_error=True)
    assert all(job.value >= 0.2 for job in jobs)
    posts = requests.get(f"{url}/sandbox/swift-posts", timeout=HTTP_TIMEOUT).json()["posts"]
    assert len(posts) == session_count
    assert all(p["answered_at"] - p["at"] >= 0.2 and p["status"] == 422 for p in posts)
    # the most POSTs the sandbox held at one moment, by its own arrival and answer times
    edges = sorted([(p["at"], 1) for p in posts] + [(p["answered_at"], -1) for p in posts])
    held = most = 0
    for _moment, step in edges:
        held += step
        most = max(most, held)
    assert most >= 20, most


def test_swift_post_log(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp, stranger = Keypair(), Keypair()
    faucet(url, kp)
    params = order_params(base=100_000_000, auction=auction_around(oracle_price(url), "long"))
    before = time.time()
    body, _ = signed_order(kp, params, current_slot(url), b"postlog1")
    assert post_order(url, body).status_code == 200
    forged = dict(body, taker_authority=str(stranger.pubkey()))
    assert post_order(url, forged).status_code == 400
    _faults(url, swift_status=503, swift_status_count=1)
    assert post_order(url, body).status_code == 503
    after = time.time()
    posts = requests.get(f"{url}/sandbox/swift-posts", timeout=HTTP_TIMEOUT).json()["posts"]
    assert [(p["authority"], p["status"], p["message"]) for p in posts] == [
        (str(kp.pubkey()), 200, "Order processed"),
        (str(stranger.pubkey()), 400, "Error verifying signed message"),
        (str(kp.pubkey()), 503, "Service Unavailable"),
    ]
    assert before <= posts[0]["at"] <= posts[1]["at"] <= posts[2]["at"] <= after
    assert all(p["slot"] == sandbox.exchange.slot and p["answered_at"] >= p["at"]
               for p in posts)
    assert posts[1]["error"] == "Signature did not verify"
    since = requests.get(f"{url}/sandbox/swift-posts", params={"since": posts[0]["at"]},
                         timeout=HTTP_TIMEOUT).json()["posts"]
    assert since == posts[1:]
    bad = requests.get(f"{url}/sandbox/swift-posts", params={"since": "soon"},
                       timeout=HTTP_TIMEOUT)
    assert bad.status_code == 400


def test_fills_carry_their_wall_time(sandbox: SandboxServer) -> None:
    url = sandbox.url
    kp = Keypair()
    faucet(url, kp)
    params = order_params(base=100_000_000, auction=auction_around(oracle_price(url), "long"))
    body, _ = signed_order(kp, params, current_slot(url), b"fillat01")
    assert post_order(url, body).status_code == 200
    before = time.time()
    sandbox.step(3)
    (fill,) = requests.get(f"{url}/sandbox/fills", timeout=HTTP_TIMEOUT).json()["fills"]
    assert before <= fill["at"] <= time.time()


def test_rpc_calls_are_counted_per_method(sandbox: SandboxServer) -> None:
    url = sandbox.url
    key = str(Keypair().pubkey())

    def counts() -> dict[str, int]:
        return _stats(url)["rpc_calls"]

    start = counts()
    requests.post(url, json=_call("getSlot"), timeout=HTTP_TIMEOUT)
    requests.post(sandbox.backup_rpc_url, json=_call("getSlot"), timeout=HTTP_TIMEOUT)
    requests.post(url, json=[_call("getMultipleAccounts", i, [[key]]) for i in range(3)],
                  timeout=HTTP_TIMEOUT)
    requests.post(url, json=_call("getAccountInfo", 1, [key]), timeout=HTTP_TIMEOUT)
    requests.post(url, json=_call("noSuchMethod"), timeout=HTTP_TIMEOUT)
    end = counts()
    delta = {m: end[m] - start.get(m, 0) for m in end}
    assert delta == {"getSlot": 2, "getMultipleAccounts": 3, "getAccountInfo": 1, "unknown": 1}
    assert _stats(url)["totals"]["rpc_getMultipleAccounts"] == end["getMultipleAccounts"]


def test_clock_sysvar_is_served(sandbox: SandboxServer) -> None:
    url = sandbox.url
    for _ in range(2):
        value = requests.post(url, json=_call("getAccountInfo", 1, [CLOCK, {
            "encoding": "base64"}]), timeout=HTTP_TIMEOUT).json()["result"]["value"]
        data = base64.b64decode(value["data"][0])
        assert len(data) == 40 and value["owner"] == SYSVAR_OWNER and value["space"] == 40
        clock = Clock.from_bytes(data)
        assert clock.slot == sandbox.exchange.slot
        assert clock.unix_timestamp == sandbox.exchange.clock.unix_ts()
        assert clock.epoch == clock.slot // 432_000
        assert clock.leader_schedule_epoch == clock.epoch + 1
        assert clock.epoch_start_timestamp <= clock.unix_timestamp
        sandbox.step(25)  # 25 slots of 400 ms: 10 s
    assert clock.unix_timestamp == 1_800_000_000 + 10  # genesis_ts of the fixture, + 25 slots
    many = requests.post(url, json=_call("getMultipleAccounts", 1, [[CLOCK, CLOCK], {
        "encoding": "base58"}]), timeout=HTTP_TIMEOUT).json()["result"]
    raw = base58.b58decode(many["value"][1]["data"][0])
    assert Clock.from_bytes(raw).slot == many["context"]["slot"] == sandbox.exchange.slot


def test_cli_help_documents_the_timing_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--rpc-latency-ms", "--rpc-rps-limit", "--swift-latency-ms",
                 "--fill-profile", "429", "Retry-After", "v3_fast_share"):
        assert flag in out, flag
    args = cli._parser().parse_args(["--rpc-latency-ms", "30", "--rpc-rps-limit", "50",
                                     "--swift-latency-ms", "20", "--fill-profile", "v3"])
    assert (args.start_rpc_latency_ms, args.start_rpc_rps_limit, args.start_swift_latency_ms,
            args.fill_profile) == (30, 50, 20, "v3")
    args = cli._parser().parse_args(["faults", "--url", "x", "--rpc-rps-limit", "5"])
    assert args.rpc_rps_limit == 5


def test_settings_reach_the_sandbox_child() -> None:
    env = {"SANDBOX_PORT": "0", "SANDBOX_SLOT_MS": "400", "SANDBOX_RPC_LATENCY_MS": "25",
           "SANDBOX_RPC_RPS_LIMIT": "50", "SANDBOX_SWIFT_LATENCY_MS": "15",
           "SANDBOX_FILL_PROFILE": "v3"}
    settings = load_settings(env)
    defaults = load_settings({})
    assert (defaults.sandbox_rpc_latency_ms, defaults.sandbox_rpc_rps_limit,
            defaults.sandbox_swift_latency_ms, defaults.sandbox_fill_profile) == (
        0, 0, 0, "edge")
    with pytest.raises(ConfigError):
        load_settings({"SANDBOX_FILL_PROFILE": "fast"})
    venue = ProcessVenue(settings, env, start_child=True)
    try:
        assert venue.child is not None
        base = venue.child.url
        faults = requests.get(f"{base}/sandbox/faults", timeout=HTTP_TIMEOUT).json()
        assert (faults["rpc_latency_ms"], faults["rpc_rps_limit"],
                faults["swift_latency_ms"]) == (25, 50, 15)
        config = requests.get(f"{base}/sandbox/config", timeout=HTTP_TIMEOUT).json()
        assert config["fill_profile"] == "v3"
    finally:
        venue.close()
