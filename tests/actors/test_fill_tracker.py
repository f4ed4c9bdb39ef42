"""FillTracker through its own message (Track) against the real sandbox: an order that fills is
answered filled, with its fill, to whoever asked; one that cannot fill is answered expired only
once the chain is past its last valid slot; many orders are followed with a few batched reads a
slot (counted at the sandbox), not with reads of their own."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import requests
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.fill_tracker import FillTracker
from actors.legacy_executor import ExecutorClient
from actors.messages import SnapshotOf, SwiftOrder, Track, TrackedOrder, TrackResult, TrackState
from actors.services import Services
from actors.swift_signing import sign
from actors.venue_state import KEYS_PER_READ, VenueStateClient
from sandbox.server import SandboxServer
from supervision import Pending, request
from tests.actors.conftest import ASK_S, HTTP_S, Faults, child, funded, rpc_calls, running
from venue.auction import LONG, AuctionConfig
from venue.positions import PerpPositionView
from venue.swift_client import SwiftClient

SOL_MIN = 10_000_000  # 0.01 SOL, the sandbox's SOL-PERP minimum order
AUCTION = AuctionConfig(-10, 10, 10)  # 10 slots: 1 s at the sandbox's 100 ms slots
FOLLOW_S = 30.0  # each order's deadline: far past its auction, so none ends `unknown`
READS = "getMultipleAccounts"


@contextlib.contextmanager
def tracker(services: Services) -> Iterator[pykka.ActorRef[Any]]:
    """A FillTracker of its own (reading through the tree's executor and venue_state)."""
    ref = FillTracker.start(executor=ExecutorClient(services), venue=VenueStateClient(services),
                            profile=services.profile)
    with running(ref):
        yield ref


def publish(services: Services, signer: Keypair, base: int) -> TrackedOrder:
    """A SOL-PERP long of `signer`, signed as the gateway signs it and POSTed to Swift (which
    accepts it); the TrackedOrder the gateway would hand the tracker for it."""
    snapshot = request(child(services, "venue_state"), SnapshotOf(0), ASK_S)
    flat = PerpPositionView(0)
    order = SwiftOrder(signer, signer.pubkey(), 0, "SOL-PERP", LONG, base, False, snapshot, flat)
    signed = sign(order, VenueStateClient(services), AUCTION)
    client = SwiftClient(services.profile.swift_base_url)
    with contextlib.closing(client):
        posted = client.submit(signed.signed.body)
    assert posted.outcome.accepted, posted.outcome
    return TrackedOrder(signer.pubkey(), 0, 0, LONG, base, flat, signed.max_slot, signed.max_ts,
                        time.monotonic() + FOLLOW_S)


def track(ref: pykka.ActorRef[Any], order: TrackedOrder) -> pykka.Future[Any]:
    """Ask the tracker to follow `order`: the future of its answer (a TrackResult)."""
    answer = ref.ask(Track(order), timeout=ASK_S)
    assert isinstance(answer, Pending)
    return answer.future


def answered(future: pykka.Future[Any]) -> bool:
    """Whether the tracker has answered (without waiting)."""
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    return True


def fills(sandbox: SandboxServer, authority: Pubkey) -> list[dict[str, Any]]:
    """The fills the sandbox booked for this authority."""
    response = requests.get(f"{sandbox.url}/sandbox/fills", timeout=HTTP_S,
                            params={"authority": str(authority)})
    assert response.status_code == 200, response.text
    return response.json()["fills"]


def assert_filled_as_booked(sandbox: SandboxServer, order: TrackedOrder,
                            result: TrackResult) -> None:
    """The answer is `filled` with the base, average price and position the sandbox booked."""
    booked = fills(sandbox, order.authority)
    base, quote = sum(f["base"] for f in booked), sum(f["quote"] for f in booked)
    assert (result.state, result.base_filled, base) == (TrackState.FILLED, order.base_amount,
                                                        order.base_amount)
    assert result.avg_price == quote * 10**9 // base  # a fresh long's entry cost per base
    assert result.slot >= max(f["slot"] for f in booked)  # read after the venue filled it
    assert result.user_after is not None
    assert result.user_after.perp(0).base_asset_amount == order.base_amount


def test_a_filled_order_is_answered_to_its_asker_with_its_fill(
        services: Services, sandbox: SandboxServer, faults: Faults) -> None:
    """A bot that published an order must hear its own fill (size, price) from the tracker,
    not another order's, so it can book the trade and size its next signal from it."""
    orders = [publish(services, funded(sandbox), base) for base in (3 * SOL_MIN, 5 * SOL_MIN)]
    with tracker(services) as ref:
        asks = [track(ref, o) for o in orders]
        results = [a.get(timeout=FOLLOW_S) for a in asks]
    for order, result in zip(orders, results, strict=True):
        assert_filled_as_booked(sandbox, order, result)


@pytest.mark.parametrize("fault", ["swift_placement_paused", "swift_makers_paused"])
def test_an_order_that_cannot_fill_is_over_only_after_its_last_valid_slot(
        services: Services, sandbox: SandboxServer, faults: Faults, fault: str) -> None:
    """Declaring an order dead while the chain may still place or fill it lets a fallback
    trade twice: an order not placed yet, or placed with no maker bidding, must be answered
    expired, unfilled, only once the chain is past its last valid slot (and its max_ts)."""
    faults.set(**{fault: True})
    signer = funded(sandbox)
    clock = sandbox.exchange.clock
    with tracker(services) as ref:
        order = publish(services, signer, 2 * SOL_MIN)
        future = track(ref, order)
        while True:  # at each slot up to the last valid one, the order is still followed
            done, slot = answered(future), clock.slot
            if slot > order.max_slot:
                break
            assert not done, f"answered at slot {slot}, its last valid slot is {order.max_slot}"
            assert clock.wait_for_slot(slot + 1, ASK_S)
        result: TrackResult = future.get(timeout=FOLLOW_S)
    assert (result.state, result.base_filled, result.avg_price) == (TrackState.EXPIRED, 0, None)
    assert result.slot > order.max_slot  # decided from a read made past its last valid slot
    stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=HTTP_S).json()
    mine = stats["by_authority"][str(signer.pubkey())]
    assert fills(sandbox, signer.pubkey()) == []
    if fault == "swift_placement_paused":  # never placed: nothing was seen open
        assert (result.order_id, mine.get("swift_orders_placed")) == (None, None)
    else:  # placed and resting: over once the venue no longer fills it (past max_ts)
        assert clock.unix_ts_at(result.slot) > order.max_ts
        assert result.order_id is not None  # seen open in its account
        assert (mine.get("swift_orders_placed"), mine.get("swift_orders_filled")) == (1, None)


def test_many_open_orders_are_followed_with_a_few_batched_reads_a_slot(
        services: Services, sandbox: SandboxServer, faults: Faults) -> None:
    """Reads of its own per order would cost the venue a call per order per slot: 300 open
    orders must be followed with ceil(300 / KEYS_PER_READ) batched reads a slot, and still
    each be decided from them (real fills as filled, never-placed orders as expired)."""
    clock = sandbox.exchange.clock
    real = [publish(services, funded(sandbox), SOL_MIN) for _ in range(3)]
    max_slot = clock.slot + 10
    unplaced = [TrackedOrder(Keypair().pubkey(), 0, 0, LONG, SOL_MIN, PerpPositionView(0),
                             max_slot, clock.unix_ts_at(max_slot), time.monotonic() + FOLLOW_S)
                for _ in range(297)]  # published for accounts the venue does not have
    with tracker(services) as ref:
        first, before = clock.slot, rpc_calls(sandbox, READS)
        asks = [track(ref, o) for o in real + unplaced]
        results = [a.get(timeout=FOLLOW_S) for a in asks]
        reads, slots = rpc_calls(sandbox, READS) - before, clock.slot - first
    for order, result in zip(real, results[:len(real)], strict=True):
        assert_filled_as_booked(sandbox, order, result)
    assert {(r.state, r.user_after) for r in results[len(real):]} == {(TrackState.EXPIRED, None)}
    assert min(r.slot for r in results[len(real):]) > max_slot
    batches = math.ceil(300 / KEYS_PER_READ)  # 4: the tracker's ticks read 4 calls each
    # at most one tick a slot (plus the one in flight and a clock refresh of venue_state)
    assert reads <= batches * (slots + 2) + 1, (reads, slots)
    assert reads < len(asks)  # not even one read per order, let alone one per order a slot
