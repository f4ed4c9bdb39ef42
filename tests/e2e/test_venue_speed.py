"""Copy trading at venue speed, through the real daemon, sandbox and PostgreSQL.

Subscribers' orders leave while the source's own order is still in its auction; a 100-subscriber
fan-out reads the venue a handful of times, not per order; an unfilled Swift order falls back
on-chain only once it can no longer trade; an RPC provider's 429s cost time, never an order.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from storage.notify import Listener
from storage.retry_queue import SETTLED_CHANNEL
from supervision import CrashDrill, whereis
from tests.e2e.stack import Stack, copy_ids, sandbox_get

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"


def swift_posts(stack: Stack, agent: str, since: float = 0.0) -> list[dict[str, Any]]:
    return [p for p in sandbox_get(stack, "/sandbox/swift-posts", since=since)["posts"]
            if p["authority"] == agent]


def all_done(stack: Stack, signal_ids: list[str]) -> None:
    """Every signal ended `done` (the others' stories in the failure message)."""
    final = stack.wait(*signal_ids)
    bad = [k for k, v in final.items() if v != "done"]
    assert not bad, [stack.db.fetchone("SELECT status, status_reason, outcome FROM"
                                       " webhook_signals WHERE id = %s", (k,)) for k in bad]


def fills(stack: Stack, agent: str) -> list[dict[str, Any]]:
    return sandbox_get(stack, "/sandbox/fills", authority=agent)["fills"]


def test_subscribers_are_posted_while_the_source_is_still_in_its_auction(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(5)
    stack.faults(swift_makers_paused_for=source["agent"])  # the source's auction runs out
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    made = copy_ids(stack, signal_id)
    all_done(stack, made)
    (source_post,) = swift_posts(stack, source["agent"])
    (source_trade,) = stack.trades(signal_id)
    assert source_trade["execution_method"] == "legacy"
    assert source_trade["fallback_reason"] == "swift_expired:not_filled"
    (source_fill,) = fills(stack, source["agent"])  # on-chain, after its Swift auction ended
    for follower in followers:
        (post,) = swift_posts(stack, follower["agent"])
        (fill,) = fills(stack, follower["agent"])
        assert fill["source"] == "swift_maker"
        # every subscriber was on the wire, and filled, while the source's auction still ran
        assert post["at"] < source_fill["at"] and fill["at"] < source_fill["at"]
        assert post["at"] - source_post["at"] < 10 * 0.1  # within the source's 10-slot auction


def test_a_100_subscriber_fanout_reads_the_venue_a_handful_of_times(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(100)
    agents = {f["agent"] for f in followers}
    warm = stack.alert(source, OPEN_LONG.replace("@ 1", "@ 2")).json()["signal_id"]  # actors up
    stack.wait(warm)  # copies exist once the source signal was claimed
    stack.wait(*copy_ids(stack, warm))
    started = time.time()
    signal_id = stack.alert(source, "order sell @ 2 filled on SOLUSD."
                            " New strategy position is 0").json()["signal_id"]
    assert stack.wait(signal_id)[signal_id] == "done"
    made = copy_ids(stack, signal_id)
    all_done(stack, made)
    posts = [p for p in sandbox_get(stack, "/sandbox/swift-posts", since=started)["posts"]
             if p["authority"] in agents]
    assert {p["authority"] for p in posts} == agents and len(posts) == 100
    # what it took to get the fan-out onto the wire: everything read before the first copy
    # left (the snapshot, the source's and every subscriber's account); from then on the reads
    # are the fill tracker's, one a slot for all open orders, whatever their number
    first_post = min(p["at"] for p in posts)
    calls = sandbox_get(stack, "/sandbox/rpc-log", since=started)["calls"]
    before_posts = [c for c in calls if c["at"] <= first_post]
    assert len(before_posts) <= 10, before_posts  # health probes (getSlot) count too
    for follower in followers:
        assert stack.position(follower["agent"]) == 0  # each closed exactly once


def test_an_unfilled_swift_order_falls_back_once_it_can_no_longer_trade_and_within_2_slots(
        slow_stack: Stack) -> None:
    stack = slow_stack
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_makers_paused=True)  # placed, never filled: it must die, then go on-chain
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["fallback_reason"]) == (
        "legacy", "swift_expired:not_filled")
    (submitted,) = stack.db.fetchall(
        "SELECT request_payload FROM swift_order_logs WHERE trade_id = %s"
        " AND event_type = 'submitted'", (trade["id"],))
    signed = submitted["request_payload"]
    (post,) = swift_posts(stack, bot["agent"])
    # the profile's auction, not 50 slots: 10 slots from the moment it left (its signed slot
    # is its snapshot's; the slot clock the daemon extrapolates may be one off the sandbox's)
    assert abs(signed["max_slot"] - post["slot"] - 10) <= 1
    (fill,) = fills(stack, bot["agent"])  # one fill: the Swift order never traded
    assert fill["source"] != "swift_maker"
    # never earlier: the on-chain order landed after the Swift order's last slot and after
    # the chain's clock passed the max_ts it was signed with (the program's own rule)
    assert fill["slot"] > signed["max_slot"] and fill["chain_ts"] > signed["max_ts"]
    # and not much later: within two slots of its last valid slot (max_ts is signed so the
    # chain's whole-second clock passes it by then)
    assert fill["slot"] <= signed["max_slot"] + 2, (fill, signed["max_slot"], signed["max_ts"])
    assert stack.position(bot["agent"]) == int(trade["filled_size"] * 10**9) > 0


def test_rpc_rate_limits_cost_time_but_never_an_order(stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(10)
    stack.faults(rpc_rps_limit=2)  # a provider at 2 requests/s answers the rest with 429
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copy_ids(stack, signal_id)
    stack.wait(*made)  # some orders may need a retry job when the provider keeps refusing

    def retries_settled(cur: Any) -> bool | None:
        cur.execute("SELECT count(*) AS n FROM trade_retry_queue"
                    " WHERE status IN ('pending', 'running')")
        return True if cur.fetchone()["n"] == 0 else None

    listener = Listener(stack.db.dsn, SETTLED_CHANNEL)
    try:
        listener.wait_until(retries_settled, 120, "every retry job settled")
    finally:
        listener.close()
    limited = sandbox_get(stack, "/sandbox/stats")["totals"].get("rpc_rate_limited", 0)
    assert limited > 0
    for bot in [source, *followers]:  # none lost, none doubled
        assert len(fills(stack, bot["agent"])) == 1
        assert stack.position(bot["agent"]) > 0


def test_an_opening_copy_beyond_its_price_deviation_is_skipped_with_the_reason(
        slow_stack: Stack) -> None:
    stack = slow_stack
    source = stack.new_bot(max_usd="300")
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    wallet = stack.cli("wallet", "create", "--fund", "1000")
    sub = stack.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to", source["bot_id"],
                    "--capital-usd", "200", "--max-deviation-bps", "5")
    assert sub["max_deviation_bps"] == 5
    # the subscriber's first copy sits through its whole auction, so its second copy runs
    # seconds after the source priced it, against a market that has moved 2 %
    stack.faults(swift_makers_paused_for=wallet["agent_public_key"])
    opened = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(opened)
    increased = stack.alert(source, "order buy @ 1 filled on SOLUSD."
                            " New strategy position is 2").json()["signal_id"]
    stack.wait(increased)
    stack.move_oracle(1.02)
    (first_copy,) = copy_ids(stack, opened)
    (second_copy,) = copy_ids(stack, increased)
    assert stack.wait(first_copy, second_copy) == {first_copy: "done", second_copy: "skipped"}
    story = stack.story(increased)
    (copy,) = story["subscribers"]
    assert copy["trades"] == [] and "price moved" in copy["status_reason"]
    assert "limit 5 bps" in copy["status_reason"]
    assert len(fills(stack, wallet["agent_public_key"])) == 1  # only the first copy traded


@pytest.mark.parametrize("slow_stack", [{"SWIFT_RATE_BURST": "1", "SWIFT_RATE_PER_S": "1.5"}],
                         indirect=True)
def test_every_copy_is_signed_at_the_source_snapshot_however_long_the_fan_out_lasts(
        slow_stack: Stack) -> None:
    stack = slow_stack
    source, followers = stack.published_with_subscribers(5)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copy_ids(stack, signal_id)
    all_done(stack, made)
    # one token, then one every 0.67 s: the last of the six orders leaves some 8 slots after
    # the source's snapshot, still inside its 10-slot wait for budget
    snapshot = stack.db.fetchone("SELECT snapshot FROM webhook_signals WHERE id = %s",
                                 (signal_id,))["snapshot"]
    trades = [t for s in [signal_id, *made] for t in stack.trades(s)]
    assert [t["execution_method"] for t in trades] == ["swift"] * 6
    assert {t["reference_price"] for t in trades} == {
        Decimal(snapshot["market"]["oracle_price"]) / 10**6}
    agents = {bot["bot_id"]: bot["agent"] for bot in [source, *followers]}
    for trade in trades:
        (signed,) = stack.db.fetchall(
            "SELECT request_payload FROM swift_order_logs WHERE trade_id = %s"
            " AND event_type = 'submitted'", (trade["id"],))
        order = signed["request_payload"]
        (post,) = swift_posts(stack, agents[trade["trading_bot_id"]])
        assert order["slot"] == snapshot["slot"]  # one slot and oracle for every order
        assert abs(order["max_slot"] - post["slot"] - 10) <= 1  # 10 slots from leaving


@pytest.mark.parametrize("stack", [{"SWIFT_RATE_BURST": "2", "SWIFT_RATE_PER_S": "6"}],
                         indirect=True)
def test_orders_over_the_swift_budget_wait_for_it_instead_of_going_on_chain(
        stack: Stack) -> None:
    source, followers = stack.published_with_subscribers(5)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copy_ids(stack, signal_id)
    all_done(stack, made)
    # six orders, two tokens and six more a second: the last waits ~0.7 s of its 1 s window
    trades = [t for s in [signal_id, *made] for t in stack.trades(s)]
    assert [t["execution_method"] for t in trades] == ["swift"] * 6
    assert all(len(swift_posts(stack, b["agent"])) == 1 for b in [source, *followers])


@pytest.mark.parametrize("stack", [{"SWIFT_RATE_BURST": "1", "SWIFT_RATE_PER_S": "0.2"}],
                         indirect=True)
def test_an_order_whose_budget_never_comes_in_its_window_goes_on_chain(stack: Stack) -> None:
    source, _followers = stack.published_with_subscribers(2)
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    stack.wait(signal_id)
    made = copy_ids(stack, signal_id)
    all_done(stack, made)
    trades = [t for s in [signal_id, *made] for t in stack.trades(s)]
    methods = sorted((t["execution_method"], t["fallback_reason"]) for t in trades)
    # one token, the next after 5 s: the source's order takes the token; both copies, queued
    # together behind it, wait their auction window (10 slots, at most 4 s, counted from
    # queueing) for the next one and go on-chain
    assert methods == [("legacy", "swift_not_sent:rate_budget")] * 2 + [("swift", None)]


def test_an_order_open_while_the_fill_tracker_crashes_is_followed_to_its_end(
        slow_stack: Stack) -> None:
    stack = slow_stack
    bot = stack.new_bot(max_usd="300")
    stack.faults(swift_makers_paused=True)  # the order stays open through its 4 s auction
    signal_id = stack.alert(bot, OPEN_LONG).json()["signal_id"]
    stats = stack.sandbox.exchange.stats
    assert stats.wait_for(lambda: stats.by_authority[bot["agent"]].get(
        "swift_orders_received", 0) >= 1, timeout=30)  # it is out there, in its auction
    whereis(stack.root, "fill_tracker", 5).tell(CrashDrill())
    assert stack.wait(signal_id) == {signal_id: "done"}
    (trade,) = stack.trades(signal_id)
    assert (trade["execution_method"], trade["fallback_reason"]) == (
        "legacy", "swift_expired:not_filled")
    assert len(fills(stack, bot["agent"])) == 1
