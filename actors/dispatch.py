"""Waking a bot's actor: start it under the bots supervisor if needed, then tell it to work."""

from __future__ import annotations

from typing import Any

import pykka

from actors.bot import BotActor, bot_child_name
from actors.messages import ProcessSignal
from actors.services import Services
from supervision import ChildSpec, Restart, StartChild, request, whereis

ASK_TIMEOUT_S = 10.0


def bot_ref(services: Services, bot_id: str) -> pykka.ActorRef[Any]:
    """The bot's actor, started on demand (idempotent by name)."""
    assert services.root is not None
    bots = whereis(services.root, "bots", ASK_TIMEOUT_S)
    spec = ChildSpec(bot_child_name(bot_id), BotActor,
                     kwargs={"bot_id": bot_id, "services": services},
                     restart=Restart.TRANSIENT, stop_timeout=30.0)
    return request(bots, StartChild(spec), ASK_TIMEOUT_S)


def wake_bot(services: Services, bot_id: str, signal_id: str) -> None:
    """Tell the bot's actor a signal is waiting (it runs its backlog in order)."""
    bot_ref(services, bot_id).tell(ProcessSignal(signal_id))


def wake_backlogs(services: Services) -> int:
    """Wake every bot with accepted signals, or with signals a crash left processing (its
    actor reconciles those on start)."""
    rows = services.db.fetchall(
        "SELECT DISTINCT trading_bot_id FROM webhook_signals"
        " WHERE status IN ('accepted', 'processing')")
    for row in rows:
        wake_bot(services, row["trading_bot_id"], "backlog")
    return len(rows)
