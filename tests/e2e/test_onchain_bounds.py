"""On-chain orders at scale, through the real daemon, sandbox and PostgreSQL.

Many on-chain orders against a rate-limited RPC provider all reach a known outcome, each sent
once, and are confirmed together (a status read a slot, not one per order per poll); a
100-subscriber fan-out from a cold start, with the sandbox's RPC latency on, reads the venue
a handful of times before its Swift POSTs, then once or twice a slot while they go out (the
fill tracker, the slot clock, the health probe), never once per order.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from tests.e2e.stack import Stack, copy_ids, sandbox_get

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
ON_CHAIN_ORDERS = 40  # subscribers, plus the source
RPS_LIMIT = 10  # the provider's requests per second (and burst): far below one call per order
FANOUT = 100
RPC_LATENCY_MS = 40
RPC_CALLS_BEFORE_POSTS = 10  # the goal for a 100-subscriber fan-out, from a cold start
SLOT_S = 0.4


def rpc_calls(stack: Stack) -> dict[str, int]:
    """JSON-RPC calls the sandbox answered so far, per method (429s not included)."""
    return sandbox_get(stack, "/sandbox/stats")["rpc_calls"]


@pytest.mark.parametrize("slow_stack", [{"SWIFT_ENABLED": "false"}], indirect=True)
def test_many_on_chain_orders_against_a_rate_limit_all_land_once(slow_stack: Stack) -> None:
    stack = slow_stack
    source, followers = stack.published_with_subscribers(ON_CHAIN_ORDERS - 1)
    bots = [source, *followers]
    before = rpc_calls(stack)
    stack.faults(rpc_rps_limit=RPS_LIMIT)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    made = copy_ids(stack, signal_id)
    final = stack.wait(*made)
    stack.faults()
    trades = [t for s in [signal_id, *made] for t in stack.trades(s)]
    # no unknown, none lost, none refused for good
    assert [(t["status"], t["error_message"]) for t in trades if t["status"] != "completed"] == []
    assert {t["execution_method"] for t in trades} == {"legacy"}
    assert set(final.values()) == {"done"}
    stats = sandbox_get(stack, "/sandbox/stats")
    assert stats["totals"].get("rpc_rate_limited", 0) > 0  # the provider did refuse calls
    for bot in bots:  # each order's transaction landed once, and filled once
        assert stats["by_authority"][bot["agent"]].get("transactions_landed") == 1
        assert len(sandbox_get(stack, "/sandbox/fills", authority=bot["agent"])["fills"]) == 1
        assert stack.position(bot["agent"]) > 0
    after = rpc_calls(stack)
    confirming = after.get("getSignatureStatuses", 0) - before.get("getSignatureStatuses", 0)
    blockhashes = after.get("getLatestBlockhash", 0) - before.get("getLatestBlockhash", 0)
    # per-order confirmation would cost at least one status read per order, and more with
    # every poll: one read a slot for all open transactions costs a fraction of that
    assert confirming <= ON_CHAIN_ORDERS // 4, (confirming, after)
    assert blockhashes <= ON_CHAIN_ORDERS // 4, (blockhashes, after)


def test_a_cold_100_subscriber_fanout_reads_the_venue_per_slot_not_per_order(
        database_url: str, tmp_path: Path) -> None:
    sandbox = SandboxServer("127.0.0.1", 0, seed=29, slot_ms=400)
    sandbox.start()
    setup = Stack(database_url, tmp_path, sandbox=sandbox)
    try:
        source, followers = setup.published_with_subscribers(FANOUT)
    finally:
        setup.close(keep_sandbox=True)
    stack = Stack(database_url, tmp_path, sandbox=sandbox)  # a fresh daemon: nothing cached
    try:
        stack.faults(rpc_latency_ms=RPC_LATENCY_MS)
        agents = {f["agent"] for f in followers}
        started = time.time()
        signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
        assert stack.wait(signal_id)[signal_id] == "done"
        stack.wait(*copy_ids(stack, signal_id))
        posts = [p for p in sandbox_get(stack, "/sandbox/swift-posts", since=started)["posts"]
                 if p["authority"] in agents]
        assert {p["authority"] for p in posts} == agents
        first_post, last_post = min(p["at"] for p in posts), max(p["at"] for p in posts)
        log = sandbox_get(stack, "/sandbox/rpc-log", since=started)["calls"]
        before = [c["method"] for c in log if c["at"] < first_post]
        assert len(before) <= RPC_CALLS_BEFORE_POSTS, before
        # while the POSTs go out, the venue is read per slot (the fill tracker's one batched
        # read, the slot clock, the health probe), never per order
        during = [c["method"] for c in log if first_post <= c["at"] <= last_post]
        slots = math.ceil((last_post - first_post) / SLOT_S)
        assert len(during) <= 2 * slots + 2, (slots, during)
    finally:
        stack.close()
