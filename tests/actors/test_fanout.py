"""FanoutCoordinator through RouteCopies: every subscriber's bot is woken, none is waited for,
and their venue accounts are read ahead in batches the bots then find in venue_state."""

from __future__ import annotations

import math
import uuid
from typing import Any, ClassVar

import pytest
from gevent.event import Event
from solders.keypair import Keypair

from actors import dispatch
from actors.bot import bot_child_name
from actors.fanout import FanoutCoordinator
from actors.messages import (
    CopyTarget,
    FanoutStatus,
    ProcessSignal,
    RawAccountsOf,
    RouteCopies,
    UsersOf,
)
from actors.services import Services
from actors.venue_state import KEYS_PER_READ
from sandbox.server import SandboxServer
from supervision import SupervisedActor, TerminateChild, request
from tests.actors.conftest import ASK_S, child, funded, rpc_calls, running
from tests.daemon import wait_until
from venue.signed_msg_user_orders import signed_msg_user_orders_address

HELD_S = 30.0  # how long a woken bot stays busy at most (the test releases it sooner)


class BusyBot(SupervisedActor):
    """Stands in for a BotActor (same constructor): records its wake-ups, then stays busy with
    each until the test releases it, as a bot keeping its order through an auction does."""

    woken: ClassVar[dict[str, list[str]]] = {}
    release: ClassVar[Event] = Event()

    def __init__(self, bot_id: str, services: Services) -> None:
        super().__init__()
        self._bot_id = bot_id

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessSignal):
            BusyBot.woken.setdefault(self._bot_id, []).append(message.signal_id)
            BusyBot.release.wait(HELD_S)
            return None
        return super().on_receive(message)


@pytest.fixture
def busy_bots(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Bots are started as BusyBot; released and removed from the bots supervisor after."""
    monkeypatch.setattr(dispatch, "BotActor", BusyBot)
    BusyBot.woken, BusyBot.release = {}, Event()
    yield BusyBot
    BusyBot.release.set()
    for bot_id in list(BusyBot.woken):
        request(child(services, "bots"), TerminateChild(bot_child_name(bot_id)), ASK_S)


def test_route_copies_wakes_every_subscriber_and_waits_for_none(
        services: Services, sandbox: SandboxServer, busy_bots: type[BusyBot]) -> None:
    subscribers = 120  # 240 keys (User + SignedMsgUserOrders each): three reads of 99
    funded_ones = [funded(sandbox) for _ in range(3)]
    authorities = [k.pubkey() for k in funded_ones] + \
        [Keypair().pubkey() for _ in range(subscribers - len(funded_ones))]
    copies = tuple(CopyTarget(str(uuid.uuid4()), str(uuid.uuid4()), authority, 0)
                   for authority in authorities)
    signal_id = str(uuid.uuid4())
    reads_before = rpc_calls(sandbox, "getMultipleAccounts")
    with running(FanoutCoordinator.start(services=services)) as fanout:
        fanout.tell(RouteCopies(signal_id, copies))
        wait_until(lambda: handed_out(fanout) >= subscribers, "copies handed out", ASK_S)
        assert handed_out(fanout) == subscribers
    # every bot was woken for this signal, and every one of them is still busy with it
    assert busy_bots.woken == {c.bot_id: [signal_id] for c in copies}
    assert not busy_bots.release.is_set()

    # the accounts were read ahead, in batches: the bots' own asks are served from that read
    venue = child(services, "venue_state")
    keys = 2 * subscribers
    reads = rpc_calls(sandbox, "getMultipleAccounts") - reads_before
    assert math.ceil(keys / KEYS_PER_READ) <= reads <= math.ceil(keys / KEYS_PER_READ) + 1
    users = request(venue, UsersOf(tuple((a, 0) for a in authorities)), ASK_S).users
    signed = request(venue, RawAccountsOf(tuple(signed_msg_user_orders_address(
        services.profile, a) for a in authorities)), ASK_S)
    assert rpc_calls(sandbox, "getMultipleAccounts") - reads_before == reads
    assert [users[(a, 0)] is not None for a in authorities] == \
        [a in {k.pubkey() for k in funded_ones} for a in authorities]
    assert sum(account is not None for account in signed.values()) == len(funded_ones)


def handed_out(fanout: Any) -> int:
    """Copies the fan-out handed out so far (it counts them once their bots were woken)."""
    return request(fanout, FanoutStatus(), ASK_S)["handed_out"]


def test_a_bot_actor_is_looked_up_once_and_again_once_it_stopped(
        services: Services, busy_bots: type[BusyBot], monkeypatch: pytest.MonkeyPatch) -> None:
    """Waking a fan-out's bots asks the bots supervisor once per bot, not per signal; a bot
    whose actor stopped since is started again and woken."""
    busy_bots.release.set()
    bot_id = str(uuid.uuid4())
    lookups: list[Any] = []

    def counted(ref: Any, message: Any, timeout_s: float) -> Any:
        lookups.append(message)
        return request(ref, message, timeout_s)

    monkeypatch.setattr(dispatch, "request", counted)
    dispatch.wake_bots(services, [bot_id], "first")
    first = services.resolved[bot_child_name(bot_id)]
    assert len(lookups) == 1
    dispatch.wake_bots(services, [bot_id], "second")
    assert len(lookups) == 1  # told directly
    request(child(services, "bots"), TerminateChild(bot_child_name(bot_id)), ASK_S)
    wait_until(lambda: not first.is_alive(), "the bot's actor stopped", ASK_S)
    dispatch.wake_bots(services, [bot_id], "third")
    assert len(lookups) == 2 and services.resolved[bot_child_name(bot_id)].is_alive()
    wait_until(lambda: busy_bots.woken.get(bot_id) == ["first", "second", "third"],
               "every wake-up delivered", ASK_S)
