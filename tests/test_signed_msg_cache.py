"""The Swift gateway's SignedMsgUserOrders answers: read once per authority through the venue
state, an existing account remembered for good, a missing one looked at again after a while, a
failed read never cached (and never holding an order back from Swift)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest
from solders.pubkey import Pubkey

from actors import signed_msg_cache
from actors.messages import HasSignedMsgOrders, IsHealthy
from actors.swift_gateway import SwiftGateway
from supervision import request
from venue.auction import AuctionConfig
from venue.profiles import PROFILES
from venue.rpc_client import AccountData, RpcTransportError
from venue.signed_msg_user_orders import signed_msg_user_orders_address

PROFILE = PROFILES["drift-devnet"]


class FakeVenue:
    """Stands in for VenueStateClient.raw_accounts: accounts by key, every read counted."""

    def __init__(self) -> None:
        self.accounts: dict[Pubkey, AccountData] = {}
        self.reads: list[tuple[Pubkey, ...]] = []
        self.fail = False
        self.gate: gevent.event.Event | None = None

    def raw_accounts(self, keys: tuple[Pubkey, ...],
                     fresh_after: float = 0.0) -> dict[Pubkey, AccountData | None]:
        self.reads.append(keys)
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RpcTransportError("primary", "getMultipleAccounts", "http_503", 503)
        return {k: self.accounts.get(k) for k in keys}

    def create(self, authority: Pubkey, owner: Pubkey = PROFILE.program_id) -> None:
        self.accounts[signed_msg_user_orders_address(PROFILE, authority)] = AccountData(
            lamports=1, owner=owner, data=b"", executable=False)


@pytest.fixture
def gateway() -> Iterator[tuple[Any, FakeVenue]]:
    venue = FakeVenue()
    ref = SwiftGateway.start(client=None, venue=venue, tracker=None, db=None,
                             auction=AuctionConfig(-10, 10, 10), profile=PROFILE)
    yield ref, venue
    ref.stop()


def has(ref: Any, authority: Pubkey) -> bool:
    return request(ref, HasSignedMsgOrders(authority), 5)


def test_an_existing_account_is_read_once_and_remembered(gateway) -> None:
    ref, venue = gateway
    authority = Pubkey.new_unique()
    venue.create(authority)
    assert has(ref, authority) and has(ref, authority)
    assert venue.reads == [(signed_msg_user_orders_address(PROFILE, authority),)]


def test_a_missing_account_is_cached_then_looked_at_again(gateway, monkeypatch) -> None:
    ref, venue = gateway
    authority = Pubkey.new_unique()
    assert not has(ref, authority) and not has(ref, authority)
    assert len(venue.reads) == 1  # the negative answer is cached too...
    venue.create(authority)  # `wallet init-orders` ran
    monkeypatch.setattr(signed_msg_cache, "SIGNED_MSG_RECHECK_S", 0.0)  # ...for a while
    assert has(ref, authority) and len(venue.reads) == 2


def test_an_account_of_another_program_does_not_count(gateway) -> None:
    ref, venue = gateway
    authority = Pubkey.new_unique()
    venue.create(authority, owner=Pubkey.new_unique())
    assert not has(ref, authority)


def test_a_failed_read_holds_nothing_back_and_is_not_cached(gateway) -> None:
    ref, venue = gateway
    authority = Pubkey.new_unique()
    venue.fail = True
    assert has(ref, authority)
    venue.fail = False
    assert not has(ref, authority) and len(venue.reads) == 2


def test_asks_while_a_read_is_in_flight_share_it(gateway) -> None:
    ref, venue = gateway
    authority = Pubkey.new_unique()
    venue.fail = True  # nothing is cached: only sharing the one read keeps it at one
    venue.gate = gevent.event.Event()
    asks = [gevent.spawn(has, ref, authority) for _ in range(5)]
    gevent.sleep(0)  # a yield: each ask is put in the mailbox, then waits for its answer
    assert request(ref, IsHealthy(), 5)  # the mailbox took the five asks before this one
    venue.gate.set()
    assert [a.get(timeout=5) for a in asks] == [True] * 5
    assert len(venue.reads) == 1
