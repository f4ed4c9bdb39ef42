"""SwiftGateway through its messages (Submit, SwiftProbe, IsHealthy) against the real sandbox:
its health rules, its rate budget, its bound on POSTs in flight, and a signed order that the
sandbox verifies, places and fills."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pykka
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair

from actors.messages import IsHealthy, SnapshotOf, Submit, SwiftOrder, SwiftProbe, SwiftResult
from actors.services import NamedActor, Services
from actors.swift_gateway import SwiftGateway
from actors.swift_signing import uuid_for
from actors.venue_state import VenueStateClient
from sandbox.server import SandboxServer
from supervision import request
from tests.actors.conftest import ASK_S, HTTP_S, BotRow, Faults, child, funded, running
from venue.auction import LONG, AuctionConfig
from venue.positions import PerpPositionView
from venue.swift_client import SwiftClient

SOL_MIN = 10_000_000  # 0.01 SOL, the sandbox's SOL-PERP minimum order
AUCTION_SLOTS = 10  # 1 s at the sandbox's 100 ms slots: an order's window for budget
WAIT_S = 10.0  # how long a Submit may follow its order


@contextlib.contextmanager
def gateway(services: Services, **overrides: Any) -> Iterator[pykka.ActorRef[Any]]:
    """A SwiftGateway of its own (the tree's venue_state and fill_tracker behind it)."""
    kwargs: dict[str, Any] = {
        "client": SwiftClient(services.profile.swift_base_url, order_timeout_ms=3000),
        "venue": VenueStateClient(services), "tracker": NamedActor(services, "fill_tracker"),
        "db": services.db, "auction": AuctionConfig(-10, 10, AUCTION_SLOTS),
        **overrides}
    with running(SwiftGateway.start(**kwargs)) as ref:
        yield ref


def order(services: Services, bot: BotRow, signer: Keypair, base: int = SOL_MIN) -> SwiftOrder:
    """A SOL-PERP long of `signer`, sized from a snapshot read now, on a new trade row."""
    snapshot = request(child(services, "venue_state"), SnapshotOf(0), ASK_S)
    return SwiftOrder(signer, signer.pubkey(), 0, "SOL-PERP", LONG, base, False, snapshot,
                      PerpPositionView(0, 0), trade_id=bot.new_trade(base), bot_id=bot.bot_id)


def submit(ref: pykka.ActorRef[Any], swift_order: SwiftOrder) -> SwiftResult:
    return request(ref, Submit(swift_order, WAIT_S), WAIT_S + ASK_S)


def submit_all(ref: pykka.ActorRef[Any], orders: list[SwiftOrder]) -> list[SwiftResult]:
    """Submit every order at once; the answers in order."""
    asks = [gevent.spawn(submit, ref, o) for o in orders]
    gevent.joinall(asks, timeout=WAIT_S + 2 * ASK_S, raise_error=True)
    return [a.get(block=False) for a in asks]


def healthy(ref: pykka.ActorRef[Any]) -> bool:
    return request(ref, IsHealthy(), ASK_S)


def posts(sandbox: SandboxServer, *signers: Keypair) -> list[dict[str, Any]]:
    """The POST /orders the sandbox received from these signers, oldest first."""
    mine = {str(s.pubkey()) for s in signers}
    every = requests.get(f"{sandbox.url}/sandbox/swift-posts", timeout=HTTP_S).json()["posts"]
    return [p for p in every if p["authority"] in mine]


# --- health ------------------------------------------------------------------------------------

Event = tuple[str, Any]  # ("probe", ok) or ("post", HTTP status the sandbox answers)
EVENTS = st.one_of(st.tuples(st.just("probe"), st.booleans()),
                   st.tuples(st.just("post"), st.sampled_from([404, 429, 500, 503])))


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENTS, max_size=10), threshold=st.integers(1, 3),
       recovers=st.booleans())
@example(events=[("post", 500)] * 3 + [("probe", True)], threshold=3, recovers=False)
@example(events=[("post", 503)] * 3 + [("probe", True)], threshold=3, recovers=True)
@example(events=[("probe", False)] * 3 + [("post", 500), ("probe", True)], threshold=3,
         recovers=False)
@example(events=[("post", 429), ("probe", False), ("post", 429), ("probe", False)],
         threshold=3, recovers=False)
@example(events=[("post", 500), ("post", 500), ("post", 404), ("post", 500)], threshold=3,
         recovers=False)
def test_health_follows_consecutive_probe_and_order_failures(
        services: Services, sandbox: SandboxServer, bot_row: BotRow,
        events: list[Event], threshold: int, recovers: bool) -> None:
    """Swift is unhealthy once `threshold` probes in a row, or as many POSTs in a row that the
    service failed (429, 5xx), failed; a rejection (404 unknown user) neither counts nor
    clears; a good probe clears the probe count, and the order count only once `recovery_s`
    has passed since the last failed POST. While unhealthy an order is answered not_sent
    without reaching the wire."""
    knobs = Faults(sandbox.url)
    signer = Keypair()  # no account at the venue: unless a fault answers, 404 user_not_found
    probes = orders = 0
    expected = True
    sent = 0
    with gateway(services, failures_unhealthy=threshold,
                 recovery_s=0.0 if recovers else 3600.0) as ref:
        try:
            for kind, value in events:
                if kind == "probe":
                    request(ref, SwiftProbe(value), ASK_S)
                    probes = 0 if value else probes + 1
                    if value and recovers:
                        orders = 0
                else:
                    if value == 404:
                        knobs.clear()
                    else:
                        knobs.set(swift_status=value, swift_status_count=1)
                    result = submit(ref, order(services, bot_row, signer))
                    if expected:
                        sent += 1
                        failed = value != 404
                        orders += failed
                        assert (result.state, result.service_failure) == ("rejected", failed)
                    else:
                        assert (result.state, result.reason) == ("not_sent", "swift_unhealthy")
                    assert len(posts(sandbox, signer)) == sent
                expected = max(probes, orders) < threshold
                assert healthy(ref) is expected, (kind, value, probes, orders)
        finally:
            knobs.clear()


def test_an_accepted_order_clears_the_count_of_failed_orders(
        services: Services, sandbox: SandboxServer, bot_row: BotRow, faults: Faults) -> None:
    """Failures must be consecutive: an order Swift accepted in between starts the count anew."""
    signer = funded(sandbox)
    with gateway(services, failures_unhealthy=3) as ref:
        faults.set(swift_status=500, swift_status_count=2)
        for _ in range(2):
            assert submit(ref, order(services, bot_row, signer)).state == "rejected"
        assert healthy(ref)
        assert submit(ref, order(services, bot_row, signer)).state == "filled"
        faults.set(swift_status=500, swift_status_count=3)
        for _ in range(2):
            assert submit(ref, order(services, bot_row, signer)).state == "rejected"
        assert healthy(ref)  # two in a row since the accepted one, not four
        assert submit(ref, order(services, bot_row, signer)).state == "rejected"
        assert not healthy(ref)


def test_orders_queued_behind_failures_fall_back_without_reaching_the_wire(
        services: Services, sandbox: SandboxServer, bot_row: BotRow, faults: Faults) -> None:
    """Health is checked when an order reaches the wire: once the POSTs ahead of them made
    Swift unhealthy, the queued orders are answered not_sent and never POSTed."""
    signers = [Keypair() for _ in range(4)]
    faults.set(swift_status=503, swift_status_count=4)
    with gateway(services, failures_unhealthy=2, max_in_flight=1) as ref:
        results = submit_all(ref, [order(services, bot_row, s) for s in signers])
    assert [r.state for r in results] == ["rejected", "rejected", "not_sent", "not_sent"]
    assert {r.reason for r in results[2:]} == {"swift_unhealthy"}
    assert [p["authority"] for p in posts(sandbox, *signers)] == \
        [str(s.pubkey()) for s in signers[:2]]


# --- budget and bound --------------------------------------------------------------------------


def test_an_order_over_budget_waits_for_budget_within_its_auction_window(
        services: Services, sandbox: SandboxServer, bot_row: BotRow) -> None:
    """One token (burst 1) refilled at 5/s: three orders at once all leave, spaced by the
    refill, because each gets budget before its 1 s window ends."""
    rate = 5.0
    signers = [Keypair() for _ in range(3)]
    with gateway(services, rate_per_s=rate, burst=1) as ref:
        results = submit_all(ref, [order(services, bot_row, s) for s in signers])
    assert [r.state for r in results] == ["rejected"] * 3  # no account: the venue said so
    arrived = sorted(p["at"] for p in posts(sandbox, *signers))
    assert len(arrived) == 3
    # the second and third waited for a token each (less what the first spent before its POST)
    assert arrived[-1] - arrived[0] >= 2 / rate - 0.1


def test_an_order_that_finds_no_budget_within_its_window_is_not_sent(
        services: Services, sandbox: SandboxServer, bot_row: BotRow) -> None:
    """A refill slower than the auction window: the second and third orders never leave, and
    are answered not_sent/rate_budget (a fallback is safe) once they have waited their window
    from queueing. The third's window is not restarted when it reaches the head of the line
    (that would send it with the token that comes at 1.5 windows)."""
    first, second, third = Keypair(), Keypair(), Keypair()
    window_s = AUCTION_SLOTS * services.profile.slot_time_ms / 1000
    with gateway(services, rate_per_s=1 / (1.5 * window_s), burst=1) as ref:
        started = time.monotonic()
        results = submit_all(ref, [order(services, bot_row, first),
                                   order(services, bot_row, second),
                                   order(services, bot_row, third)])
        waited = time.monotonic() - started
    assert results[0].state == "rejected"
    assert [(r.state, r.reason) for r in results[1:]] == [("not_sent", "rate_budget")] * 2
    assert waited >= window_s
    assert [p["authority"] for p in posts(sandbox, first, second, third)] == \
        [str(first.pubkey())]


def test_posts_in_flight_never_exceed_the_bound(
        services: Services, sandbox: SandboxServer, bot_row: BotRow, faults: Faults) -> None:
    """With every POST held 300 ms at the venue, six orders go out two at a time (the bound)
    and all of them are answered: the bound queues, it does not refuse."""
    signers = [Keypair() for _ in range(6)]
    faults.set(swift_latency_ms=300)
    with gateway(services, max_in_flight=2) as ref:
        results = submit_all(ref, [order(services, bot_row, s) for s in signers])
    assert [r.state for r in results] == ["rejected"] * 6
    seen = posts(sandbox, *signers)
    assert len(seen) == 6
    # at the venue: how many POSTs were open when each arrived (itself included)
    open_at = [sum(1 for q in seen if q["at"] <= p["at"] < q["answered_at"]) for p in seen]
    assert max(open_at) == 2


# --- a real order ------------------------------------------------------------------------------


def test_a_signed_order_reaches_the_sandbox_and_fills(
        services: Services, sandbox: SandboxServer, bot_row: BotRow) -> None:
    """The gateway signs the order, records the send's fence on its trade, POSTs it; the
    sandbox verifies the signature, places and fills it; the tracker reports the fill, and
    the audit trail has every step."""
    signer = funded(sandbox)
    swift_order = order(services, bot_row, signer, base=5 * SOL_MIN)
    with gateway(services) as ref:
        result = submit(ref, swift_order)
    assert (result.state, result.base_filled) == ("filled", 5 * SOL_MIN)
    assert result.swift_order_id == uuid_for(swift_order.trade_id).decode()
    (post,) = posts(sandbox, signer)
    assert (post["status"], post["message"]) == (200, "Order processed")
    stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=HTTP_S).json()
    mine = stats["by_authority"][str(signer.pubkey())]
    assert (mine["swift_orders_accepted"], mine["swift_orders_filled"]) == (1, 1)
    trade = services.db.fetchone("SELECT swift_status, swift_order_id FROM bot_trades"
                                 " WHERE id = %s", (swift_order.trade_id,))
    assert trade == {"swift_status": "submitted", "swift_order_id": result.swift_order_id}
    logged = services.db.fetchall("SELECT event_type FROM swift_order_logs WHERE trade_id = %s"
                                  " ORDER BY created_at, event_type", (swift_order.trade_id,))
    assert sorted(row["event_type"] for row in logged) == \
        ["accepted", "filled", "placed", "submitted"]
