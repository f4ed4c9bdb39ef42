"""SolanaRpc and RpcFailover against real loopback JSON-RPC servers, with a fake clock; HTTP 429
handling against the sandbox's provider-like rate limit."""

from __future__ import annotations

import base64
import json
import time

import gevent
import pytest
import requests
from prometheus_client import REGISTRY
from solders.hash import Hash
from solders.pubkey import Pubkey

from sandbox.server import SandboxServer
from tests.venue.http_fixtures import ScriptedServer, refused_url
from venue.rpc_client import (
    AllRpcDown,
    RpcError,
    RpcRateLimited,
    RpcTransportError,
    SolanaRpc,
)
from venue.rpc_failover import Endpoint, RpcFailover


class JsonRpcServer(ScriptedServer):
    """Scripted JSON-RPC node: ``results[method]`` is a value or a callable(params)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, object] = {}
        self.mode = "ok"  # ok | hang | http500 | garbage
        self.limited = 0  # answer this many requests with a bare HTTP 429 first
        self.calls: list[tuple[str, list]] = []
        self.routes[("POST", "/")] = self._rpc

    def _rpc(self, env: dict):
        if self.mode == "hang":
            return self.hang(env)
        if self.mode == "http500":
            return 500, "upstream"
        if self.mode == "garbage":
            return 200, "<html>"
        if self.limited > 0:
            self.limited -= 1
            return 429, "Too Many Requests"
        req = json.loads(env["record"].body)
        self.calls.append((req["method"], req["params"]))
        result = self.results.get(req["method"])
        if callable(result):
            result = result(req["params"])
        if isinstance(result, dict) and "__error__" in result:
            err = result["__error__"]
            return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": err})
        return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result})


@pytest.fixture
def node():
    s = JsonRpcServer()
    yield s
    s.stop()


@pytest.fixture
def node2():
    s = JsonRpcServer()
    yield s
    s.stop()


def _acct(data: bytes, owner: Pubkey) -> dict:
    return {"data": [base64.b64encode(data).decode(), "base64"], "owner": str(owner),
            "lamports": 5, "executable": False, "rentEpoch": 0}


def test_typed_calls(node) -> None:
    owner = Pubkey.new_unique()
    bh = Hash.new_unique()
    node.results = {
        "getSlot": 321,
        "getBlockHeight": 4567,
        "getLatestBlockhash": {"context": {"slot": 1},
                               "value": {"blockhash": str(bh), "lastValidBlockHeight": 99}},
        "getAccountInfo": lambda p: {"context": {"slot": 7},
                                     "value": None if p[0] == str(owner) else _acct(b"abc", owner)},
        "getMultipleAccounts": lambda p: {"context": {"slot": 8},
                                          "value": [_acct(k.encode()[:4], owner) for k in p[0]]},
        "sendTransaction": "5sig",
        "getSignatureStatuses": {"context": {"slot": 9}, "value": [
            None, {"slot": 5, "confirmations": None, "err": None,
                   "confirmationStatus": "finalized"}]},
        "simulateTransaction": {"context": {"slot": 10}, "value": {
            "err": {"InstructionError": [0, {"Custom": 6010}]}, "logs": ["a", "b"],
            "unitsConsumed": 1234}},
    }
    rpc = SolanaRpc(node.url, label="primary", timeout_s=2)
    assert rpc.get_slot() == 321
    assert rpc.get_block_height() == 4567
    assert rpc.get_latest_blockhash() == (bh, 99)
    slot, acct = rpc.get_account_info(Pubkey.new_unique())
    assert slot == 7 and acct is not None and acct.data == b"abc" and acct.owner == owner
    assert rpc.get_account_info(owner) == (7, None)
    keys = [Pubkey.new_unique() for _ in range(250)]
    slot, accts = rpc.get_multiple_accounts(keys)
    assert len(accts) == 250 and accts[3].data == str(keys[3]).encode()[:4]
    assert [m for m, _ in node.calls].count("getMultipleAccounts") == 3  # chunked by 100
    assert rpc.send_transaction(b"\x01\x02", skip_preflight=True) == "5sig"
    _method, params = node.calls[-1]
    assert params[0] == base64.b64encode(b"\x01\x02").decode()
    assert params[1]["encoding"] == "base64" and params[1]["skipPreflight"] is True
    statuses = rpc.get_signature_statuses(["a", "b"])
    assert statuses[0] is None and statuses[1].confirmation_status == "finalized"
    sim = rpc.simulate_transaction(b"\x00")
    assert sim.err == {"InstructionError": [0, {"Custom": 6010}]}
    assert sim.logs == ["a", "b"] and sim.units_consumed == 1234


def test_rpc_error_is_typed(node) -> None:
    node.results["sendTransaction"] = {"__error__": {
        "code": -32002, "message": "Transaction simulation failed",
        "data": {"err": "x", "logs": ["Program log: nope"]}}}
    with pytest.raises(RpcError) as info:
        SolanaRpc(node.url).send_transaction(b"\x00")
    assert info.value.code == -32002 and info.value.logs == ["Program log: nope"]


@pytest.mark.parametrize(("mode", "reason"), [("http500", "http_500"), ("garbage", "invalid_json"),
                                              ("hang", "timeout")])
def test_transport_errors_are_distinct(node, mode, reason) -> None:
    node.mode = mode
    with pytest.raises(RpcTransportError) as info:
        SolanaRpc(node.url, label="primary", timeout_s=0.2).get_slot()
    assert info.value.reason == reason
    assert not isinstance(info.value, RpcError)


def test_errors_and_repr_never_show_the_url() -> None:
    url = refused_url() + "/?api-key=topsecretkey123"
    rpc = SolanaRpc(url, label="primary", timeout_s=0.5)
    with pytest.raises(RpcTransportError) as info:
        rpc.get_slot()
    assert "topsecretkey123" not in str(info.value) and "topsecretkey123" not in repr(rpc)
    assert info.value.__cause__ is None and info.value.__suppress_context__


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _failover(primary: JsonRpcServer, backup: JsonRpcServer, clock: FakeClock, switches=None):
    primary.results["getSlot"] = 100
    backup.results["getSlot"] = 200
    return RpcFailover(
        SolanaRpc(primary.url, label="primary"), SolanaRpc(backup.url, label="backup"),
        cooldown_s=180, probe_timeout_s=0.2, clock=clock,
        on_switch=(lambda a, b: switches.append((a, b))) if switches is not None else None)


def test_failover_switches_and_honours_cooldown(node, node2) -> None:
    clock, switches = FakeClock(), []
    fo = _failover(node, node2, clock, switches)
    assert fo.working_client() is fo.primary and fo.last_slot == 100

    node.mode = "hang"  # primary stops answering within the probe timeout
    assert fo.working_client() is fo.backup
    assert fo.state.active is Endpoint.BACKUP
    assert fo.state.switched_to_backup_at == clock.now
    assert fo.state.consecutive_primary_failures == 1
    assert switches == [(Endpoint.PRIMARY, Endpoint.BACKUP)]

    node.mode = "ok"  # primary recovers, but the cooldown has not passed: stay on backup
    clock.now += 179
    primary_calls = len(node.calls)
    assert fo.working_client() is fo.backup
    assert len(node.calls) == primary_calls  # primary not even probed during cooldown

    clock.now += 1  # cooldown over: primary is probed and taken back
    assert fo.working_client() is fo.primary
    assert fo.state.active is Endpoint.PRIMARY
    assert fo.state.consecutive_primary_failures == 0
    assert switches[-1] == (Endpoint.BACKUP, Endpoint.PRIMARY)


def test_primary_still_down_after_cooldown_restarts_cooldown(node, node2) -> None:
    clock = FakeClock()
    fo = _failover(node, node2, clock)
    node.mode = "http500"
    assert fo.working_client() is fo.backup
    clock.now += 200
    assert fo.working_client() is fo.backup
    assert fo.state.switched_to_backup_at == clock.now
    assert fo.state.consecutive_primary_failures == 2
    clock.now += 100  # within the new cooldown: primary not retried
    calls = len(node.requests)
    assert fo.working_client() is fo.backup and len(node.requests) == calls


def test_backup_failing_goes_straight_back_to_primary(node, node2) -> None:
    clock = FakeClock()
    fo = _failover(node, node2, clock)
    node.mode = "garbage"
    assert fo.working_client() is fo.backup
    node.mode, node2.mode = "ok", "http500"
    assert fo.working_client() is fo.primary  # no cooldown wait when backup is dead
    assert fo.state.active is Endpoint.PRIMARY


def test_all_down_raises_and_stays_on_primary(node, node2) -> None:
    fo = _failover(node, node2, FakeClock())
    node.mode = node2.mode = "http500"
    with pytest.raises(AllRpcDown):
        fo.working_client()
    assert fo.state.active is Endpoint.PRIMARY


def test_no_backup_configured(node) -> None:
    node.results["getSlot"] = 1
    fo = RpcFailover(SolanaRpc(node.url), None, clock=FakeClock(), probe_timeout_s=0.2)
    assert fo.working_client() is fo.primary
    node.mode = "http500"
    with pytest.raises(AllRpcDown):
        fo.working_client()


def test_both_down_after_cooldown_probes_primary_once(node, node2) -> None:
    clock = FakeClock()
    fo = _failover(node, node2, clock)
    node.mode = "http500"
    assert fo.working_client() is fo.backup
    clock.now += 181
    node2.mode = "http500"
    before = len(node.requests)
    with pytest.raises(AllRpcDown):
        fo.working_client()
    assert len(node.requests) == before + 1
    assert fo.state.active is Endpoint.PRIMARY


def _limited_total(endpoint: str) -> float:
    return REGISTRY.get_sample_value("rpc_rate_limited_total", {"endpoint": endpoint}) or 0.0


def _sandbox_stats(server: SandboxServer) -> dict:
    return requests.get(f"{server.url}/sandbox/stats", timeout=5).json()


def test_a_burst_over_the_rate_limit_all_succeeds_after_429s() -> None:
    before = _limited_total("primary")
    with SandboxServer("127.0.0.1", 0, slot_ms=0, faults={"rpc_rps_limit": 10}) as server:
        rpc = SolanaRpc(server.rpc_url, label="primary", timeout_s=5, pool_size=16)
        jobs = [gevent.spawn(rpc.get_slot) for _ in range(15)]
        gevent.joinall(jobs, raise_error=True)
        assert [job.value for job in jobs] == [server.exchange.slot] * 15
        limited = _sandbox_stats(server)["totals"]["rpc_rate_limited"]
        assert limited > 0
        assert _sandbox_stats(server)["rpc_calls"]["getSlot"] == 15
        assert _limited_total("primary") - before == limited
        rpc.close()


def test_still_rate_limited_after_the_budget_raises_a_transport_error() -> None:
    with SandboxServer("127.0.0.1", 0, slot_ms=0, faults={"rpc_rps_limit": 1}) as server:
        rpc = SolanaRpc(server.rpc_url, label="primary", timeout_s=5, rate_limit_budget_s=0.3)
        rpc.get_slot()  # the one token
        t0 = time.monotonic()
        with pytest.raises(RpcRateLimited) as info:
            rpc.get_slot()
        assert time.monotonic() - t0 < 1.0  # bounded by the budget, not by Retry-After: 1
        assert isinstance(info.value, RpcTransportError)
        assert (info.value.reason, info.value.http_status) == ("rate_limited", 429)
        assert _sandbox_stats(server)["totals"]["rpc_rate_limited"] >= 2
        rpc.close()


def test_429_without_retry_after_backs_off_and_retries_the_same_call(node) -> None:
    node.results["sendTransaction"] = "5sig"
    node.limited = 2
    assert SolanaRpc(node.url, label="primary").send_transaction(b"\x01") == "5sig"
    bodies = [json.loads(r.body) for r in node.requests]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)  # same bytes, same id


def test_rate_limited_primary_fails_over_to_the_backup_bucket() -> None:
    with SandboxServer("127.0.0.1", 0, slot_ms=0, faults={"rpc_rps_limit": 1}) as server:
        primary = SolanaRpc(server.rpc_url, label="primary", rate_limit_budget_s=0.1)
        backup = SolanaRpc(server.backup_rpc_url, label="backup", rate_limit_budget_s=0.1)
        primary.get_slot()  # spends the primary's bucket; the backup has its own
        fo = RpcFailover(primary, backup, clock=FakeClock(), probe_timeout_s=1)
        assert fo.working_client() is fo.backup
        assert fo.state.active is Endpoint.BACKUP
        assert _sandbox_stats(server)["totals"]["rpc_rate_limited_primary"] >= 1
        primary.close()
        backup.close()
