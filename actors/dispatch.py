"""Waking a bot's actor: start it under the bots supervisor if needed, then tell it to work.

Where the actor runs depends on the process's role: a process that executes everything (ALL)
wakes the bot here; the intake executes nothing and announces the bot to the workers (NOTIFY
signal_accepted); a worker wakes the bots it holds or that nobody holds, and announces the
others to their holders.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors.bot import BotActor, bot_child_name
from actors.messages import ProcessSignal
from actors.services import ProcessRole, Services
from storage.backlogs import backlogged_bots
from storage.bot_shares import announce, mine_or_free
from storage.signals import ACCEPTED_CHANNEL
from supervision import ChildSpec, Restart, StartChild, request, whereis

ASK_TIMEOUT_S = 10.0


def bot_ref(services: Services, bot_id: str) -> pykka.ActorRef[Any]:
    """The bot's actor, started on demand (idempotent by name); the reference is kept while
    the actor lives, so waking a fan-out's bots asks the supervisor once per bot, not per
    signal."""
    name = bot_child_name(bot_id)
    known = services.resolved.get(name)
    if known is not None and known.is_alive():
        return known
    assert services.root is not None
    bots = whereis(services.root, "bots", ASK_TIMEOUT_S)
    spec = ChildSpec(name, BotActor, kwargs={"bot_id": bot_id, "services": services},
                     restart=Restart.TRANSIENT, stop_timeout=30.0)
    ref: pykka.ActorRef[Any] = request(bots, StartChild(spec), ASK_TIMEOUT_S)
    services.resolved[name] = ref
    return ref


def wake_bots(services: Services, bot_ids: list[str], reason: str,
              announce_others: bool = True) -> None:
    """Tell each bot's actor it has work (it runs its backlog in order), wherever it runs;
    `announce_others=False`: only the bots this process runs or may take."""
    if not bot_ids:
        return
    local = bot_ids
    if services.role is not ProcessRole.ALL:
        local = mine_or_free(services.db, services.holder, bot_ids) \
            if services.role.executes else []
        others = sorted(set(bot_ids) - set(local))
        if others and announce_others:
            announce(services.db, others, ACCEPTED_CHANNEL)
    for bot_id in local:
        try:
            bot_ref(services, bot_id).tell(ProcessSignal(reason))
        except pykka.ActorDeadError:  # it stopped since: its restart (or a new one) is woken
            services.resolved.pop(bot_child_name(bot_id), None)
            bot_ref(services, bot_id).tell(ProcessSignal(reason))


def wake_bot(services: Services, bot_id: str, signal_id: str) -> None:
    """Tell the bot's actor a signal is waiting."""
    wake_bots(services, [bot_id], signal_id)


def wake_backlogs(services: Services) -> int:
    """Wake every bot with accepted signals, or with signals a crash left processing (its
    actor reconciles those on start); a worker, only those it runs or may take (each worker
    sweeps its own)."""
    bot_ids = backlogged_bots(services.db)
    wake_bots(services, bot_ids, "backlog",
              announce_others=services.role is not ProcessRole.WORKER)
    return len(bot_ids)
