"""LegacyExecutor through its messages (ReadSlot, PlaceAndTake, RpcStatus) against the real
sandbox: RPC failover from a broken primary to the backup and back, and its bound on
sendTransaction calls in flight."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pykka
import requests
from solders.keypair import Keypair

from actors.legacy_executor import LegacyExecutor
from actors.messages import LegacyOrder, LegacyResult, PlaceAndTake, ReadSlot, RpcStatus, SnapshotOf
from actors.services import Services
from sandbox.server import SandboxServer
from supervision import request
from tests.actors.conftest import ASK_S, HTTP_S, Faults, child, funded, running
from venue.auction import LONG
from venue.profiles import VenueProfile

SOL_MIN = 10_000_000
ORDER_S = 30.0  # how long a test waits for an on-chain order's outcome


@contextlib.contextmanager
def executor(profile: VenueProfile, **kwargs: Any) -> Iterator[pykka.ActorRef[Any]]:
    """A LegacyExecutor of its own (its own failover state), on the sandbox's two RPC paths."""
    with running(LegacyExecutor.start(profile=profile, **kwargs)) as ref:
        yield ref


def legacy_order(signer: Keypair, oracle_price: int, base: int = SOL_MIN) -> LegacyOrder:
    return LegacyOrder(signer, signer.pubkey(), 0, 0, LONG, base, False, oracle_price, 50)


def oracle(services: Services) -> int:
    return request(child(services, "venue_state"), SnapshotOf(0), ASK_S).market.oracle_price


def place(ref: pykka.ActorRef[Any], order: LegacyOrder) -> LegacyResult:
    return request(ref, PlaceAndTake(order), ORDER_S)


def totals(sandbox: SandboxServer) -> dict[str, int]:
    return requests.get(f"{sandbox.url}/sandbox/stats", timeout=HTTP_S).json()["totals"]


def position(sandbox: SandboxServer, signer: Keypair) -> int:
    user = requests.get(f"{sandbox.url}/sandbox/user", timeout=HTTP_S,
                        params={"authority": str(signer.pubkey())}).json()
    return sum(int(p["base_asset_amount"]) for p in user.get("positions", [])
               if p["market_index"] == 0)


def test_a_broken_primary_fails_over_to_the_backup_and_back(
        services: Services, profile: VenueProfile, sandbox: SandboxServer,
        faults: Faults) -> None:
    signer = funded(sandbox)
    price = oracle(services)
    with executor(profile) as ref:
        assert request(ref, RpcStatus(), ASK_S)["active"] == "primary"
        assert request(ref, ReadSlot(), ASK_S) > 0

        faults.set(rpc_primary_down=True)
        refused = totals(sandbox).get("rpc_primary_fault", 0)
        assert request(ref, ReadSlot(), ASK_S) > 0  # answered: by the backup
        status = request(ref, RpcStatus(), ASK_S)
        assert (status["active"], status["consecutive_primary_failures"]) == ("backup", 1)
        refused = totals(sandbox).get("rpc_primary_fault", 0) - refused
        assert refused >= 1  # the primary was tried, refused the read and the check's probe

        # an on-chain order while the primary is still down: read, sent and confirmed on the
        # backup alone (the primary is not tried again within the failover cooldown)
        before = totals(sandbox).get("rpc_primary_fault", 0)
        result = place(ref, legacy_order(signer, price, base=3 * SOL_MIN))
        assert (result.state, result.base_filled) == ("filled", 3 * SOL_MIN)
        assert position(sandbox, signer) == 3 * SOL_MIN
        assert totals(sandbox).get("rpc_primary_fault", 0) == before

        # the backup breaks and the primary is back: the next read finds the primary
        faults.set(rpc_backup_down=True)
        assert request(ref, ReadSlot(), ASK_S) > 0
        assert request(ref, RpcStatus(), ASK_S)["active"] == "primary"


def test_sends_in_flight_never_exceed_the_bound(
        services: Services, profile: VenueProfile, sandbox: SandboxServer,
        faults: Faults) -> None:
    """Every RPC call held 250 ms at the node: six orders placed at once send two at a time
    (the bound), and all six land. A call is logged as the node runs it, after the hold, so
    three sends logged within less than the hold were all in flight together."""
    hold_s = 0.25
    signers = [funded(sandbox) for _ in range(6)]
    price = oracle(services)
    faults.set(rpc_latency_ms=int(hold_s * 1000))
    since = time.time()
    with executor(profile, max_sends_in_flight=2) as ref:
        asks = [gevent.spawn(place, ref, legacy_order(s, price)) for s in signers]
        gevent.joinall(asks, timeout=ORDER_S + ASK_S, raise_error=True)
    assert [a.get(block=False).state for a in asks] == ["filled"] * 6
    calls = requests.get(f"{sandbox.url}/sandbox/rpc-log", params={"since": since},
                         timeout=HTTP_S).json()["calls"]
    sends = sorted(c["at"] for c in calls if c["method"] == "sendTransaction")
    assert len(sends) == 6  # one send each: nothing was refused or resent
    spans = [third - first for first, third in zip(sends[:-2], sends[2:], strict=True)]
    assert min(spans) >= 0.8 * hold_s
