"""Graceful stop: let the orders in flight reach an outcome before the tree stops.

On SIGTERM the runtime sets `Services.stopping`: from then on no bot claims a signal and the
retry scheduler claims no job (alerts are still committed and answered 202: they run after the
restart, since TradingView never resends). `quiesce` then waits, within DRAIN_TIMEOUT_S, for
every bot actor to finish the signal in hand (a Quiesce ask is answered after it), while the
gateway, the fill tracker and the venue owners are still up to answer them. A bot still busy at
the deadline is killed before the tree stops: its trade row (written before anything was sent)
stays `pending` and its signal `processing`, which the next start reconciles, so nothing ends
"unknown because of shutdown", and nothing asks a supervisor that is already stopping.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from actors.messages import Quiesce
from actors.services import Services
from supervision import Children, request, whereis
from supervision.supervised_actor import kill_actor

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 5.0
KILL_TIMEOUT_S = 5.0


def quiesce(services: Services, timeout_s: float) -> list[str]:
    """Stop taking work and wait for the work in hand; the names of bots still busy at the
    deadline (killed, left for reconciliation at the next start)."""
    services.stopping.set()
    assert services.root is not None
    deadline = time.monotonic() + timeout_s
    try:
        bots: dict[str, pykka.ActorRef[Any]] = request(
            whereis(services.root, "bots", ASK_TIMEOUT_S), Children(), ASK_TIMEOUT_S)
    except (pykka.Timeout, pykka.ActorDeadError, LookupError) as exc:
        log.error("drain: bots not reachable (%s); stopping at once", type(exc).__name__)
        return []
    asked = {name: ref.ask(Quiesce(), block=False) for name, ref in bots.items()}
    busy = []
    for name, answer in asked.items():
        try:
            answer.get(timeout=max(0.0, deadline - time.monotonic()))
        except pykka.Timeout:
            busy.append(name)
            kill_actor(bots[name], KILL_TIMEOUT_S)
        except Exception:  # it died meanwhile: its supervisor and the next start settle it
            continue
    if busy:
        log.warning("drain: %d bot(s) still had an order in flight after %.0f s; their trades "
                    "stay recorded as pending and are reconciled at the next start",
                    len(busy), timeout_s)
    return busy
