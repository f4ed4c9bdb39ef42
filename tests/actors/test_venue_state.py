"""VenueState through its messages (UsersOf, Sending, Now) against the real sandbox: asks that
arrive together share batched getMultipleAccounts reads (counted at the sandbox), and the slot
clock is measured from its reads and extrapolated between them."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import gevent
import pykka
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors import venue_state
from actors.legacy_executor import ExecutorClient
from actors.messages import Now, Sending, UsersOf, UsersRead
from actors.services import Services
from actors.slot_clock import PublishedClock
from actors.venue_state import KEYS_PER_READ, READS_IN_FLIGHT, VenueState, VenueStateClient
from sandbox.server import SandboxServer
from supervision import request
from tests.actors.conftest import ASK_S, SLOT_MS, funded, rpc_calls, running
from tests.daemon import wait_until
from venue.profiles import VenueProfile
from venue.snapshot import ChainTime

READS = "getMultipleAccounts"


@contextlib.contextmanager
def venue(services: Services, profile: VenueProfile) -> Iterator[pykka.ActorRef[Any]]:
    """A VenueState of its own (reading through the tree's legacy executor)."""
    with running(VenueState.start(executor=ExecutorClient(services), profile=profile)) as ref:
        yield ref


def users(ref: pykka.ActorRef[Any], *authorities: Pubkey) -> UsersRead:
    return request(ref, UsersOf(tuple((a, 0) for a in authorities)), ASK_S)


def now(ref: pykka.ActorRef[Any]) -> ChainTime:
    return request(ref, Now(), ASK_S)


def test_asks_arriving_together_share_batched_reads(
        services: Services, profile: VenueProfile, sandbox: SandboxServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(venue_state, "CALIBRATE_AFTER_S", ())  # only the test's asks read
    owners = [funded(sandbox) for _ in range(3)]
    authorities = [k.pubkey() for k in owners] + [Keypair().pubkey() for _ in range(247)]
    with venue(services, profile) as ref:
        now(ref)  # the first read: the clock alone
        before = rpc_calls(sandbox, READS)
        asks = [gevent.spawn(users, ref, a) for a in authorities]
        gevent.joinall(asks, timeout=ASK_S, raise_error=True)
        reads = rpc_calls(sandbox, READS) - before
        # a read each for the first asks (up to READS_IN_FLIGHT), then the rest in batches:
        # a handful of reads for 250 asks
        assert reads <= READS_IN_FLIGHT + math.ceil(len(authorities) / KEYS_PER_READ)
        assert reads <= 10
        for ask, authority in zip(asks, authorities, strict=True):
            user = ask.get(block=False).users[(authority, 0)]
            assert (user is not None) == (authority in {k.pubkey() for k in owners})
            assert user is None or user.authority == authority

        # asked again: all served from what was read (no read at all)
        again = users(ref, *authorities)
        assert rpc_calls(sandbox, READS) - before == reads
        assert again.users == {(a, 0): ask.get(block=False).users[(a, 0)]
                               for ask, a in zip(asks, authorities, strict=True)}

        # an order is about to leave for one account: what was read of it before is stale,
        # and only it is read again
        ref.tell(Sending(owners[0].pubkey(), 0))
        users(ref, *authorities)
        assert rpc_calls(sandbox, READS) - before == reads + 1


def test_the_slot_clock_is_measured_and_extrapolated_between_reads(
        services: Services, profile: VenueProfile, sandbox: SandboxServer) -> None:
    """Started with the profile's 400 ms slot on a 100 ms sandbox, the clock measures the slot
    time from its start-up reads, then answers the slot, as the sandbox counts it, with no
    further read."""
    clock = sandbox.exchange.clock
    with venue(services, dataclasses.replace(profile, slot_time_ms=400)) as ref:
        assert now(ref).slot_ms == 400  # nothing measured yet
        wait_until(lambda: abs(now(ref).slot_ms - SLOT_MS) < 0.2 * SLOT_MS,
                   "slot time measured", ASK_S)
        before = rpc_calls(sandbox, READS)
        first = now(ref)
        assert clock.wait_for_slot(clock.slot + 10, timeout=ASK_S)
        later, actual = now(ref), clock.slot
        assert rpc_calls(sandbox, READS) == before  # extrapolated: no read
        assert later.slot - first.slot >= 8
        assert abs(later.slot - actual) <= 2
        assert abs(later.unix_ts - clock.unix_ts()) <= 1


def test_a_stale_clock_answers_at_once_and_is_read_again_behind(
        services: Services, profile: VenueProfile, sandbox: SandboxServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(venue_state, "CALIBRATE_AFTER_S", ())
    monkeypatch.setattr(venue_state, "CLOCK_REFRESH_S", 0.3)
    clock = sandbox.exchange.clock
    with venue(services, profile) as ref:
        now(ref)
        before = rpc_calls(sandbox, READS)
        assert clock.wait_for_slot(clock.slot + 5, timeout=ASK_S)  # 0.5 s: the clock is stale
        stale = [now(ref) for _ in range(3)]  # answered from the extrapolation
        assert abs(stale[-1].slot - clock.slot) <= 2
        wait_until(lambda: rpc_calls(sandbox, READS) > before, "the clock read again", ASK_S)
        assert rpc_calls(sandbox, READS) == before + 1  # one refresh for the three asks


def test_the_clock_is_published_and_read_without_an_ask(
        services: Services, profile: VenueProfile, sandbox: SandboxServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read publishes the clock; a client extrapolates from a fresh reading without a
    message to any actor (its services have no tree: an ask would fail), and asks once the
    reading is stale."""
    monkeypatch.setattr(venue_state, "CALIBRATE_AFTER_S", ())
    published = PublishedClock()
    alone = dataclasses.replace(services, clock=published, resolved={}, root=None)
    clock = sandbox.exchange.clock
    with running(VenueState.start(executor=ExecutorClient(services), profile=profile,
                                  clock=published)) as ref:
        assert published.reading is None
        now(ref)
        reading = published.reading
        assert reading is not None and abs(reading.slot - clock.slot) <= 2
    assert clock.wait_for_slot(reading.slot + 3, timeout=ASK_S)
    extrapolated = VenueStateClient(alone).now()
    assert abs(extrapolated.slot - clock.slot) <= 2
    published.reading = dataclasses.replace(
        reading, at=reading.at - venue_state.CLOCK_REFRESH_S - 1)
    with pytest.raises(AssertionError, match="not started"):
        VenueStateClient(alone).now()
