"""FanoutCoordinator: hands a source signal's subscriber copies to their bots, all at once.

Copies are rows, created once (with the source's market snapshot) by the source's BotActor
when it claims the signal, so a crash loses none: start-up wakes every bot with accepted
signals. This actor then does two things per signal, off its mailbox: it asks VenueState to
read every subscriber's User account in batches (a 100-subscriber fan-out is one
getMultipleAccounts, not a read per order), and it wakes each subscriber's BotActor. It waits
for no one: nothing here holds a slot through an auction. What bounds the work is what is on
the wire (the Swift gateway's POSTs in flight and its rate budget), and each subscriber's own
actor keeps that subscriber's order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.dispatch import wake_bots
from actors.messages import FanoutStatus, Prefetch, RouteCopies
from actors.services import Services
from actors.venue_state import VenueStateClient
from supervision import Outcome, SupervisedActor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Woken:
    signal_id: str
    outcome: Outcome


class FanoutCoordinator(SupervisedActor):
    """Prefetches the subscribers' accounts and wakes their bots; waits for none of them."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._venue = VenueStateClient(services)
        self._handed = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RouteCopies):
            self._venue.tell(Prefetch(tuple((c.authority, c.sub_account_id)
                                            for c in message.copies)))
            self.run_in_background(lambda: self._wake(message),
                                   then=lambda o: _Woken(message.signal_id, o))
            return None
        if isinstance(message, _Woken):
            if message.outcome.error is not None:  # the periodic backlog sweep wakes them
                log.error("could not wake every subscriber: %s",
                          type(message.outcome.error).__name__,
                          extra={"signal_id": message.signal_id})
            else:
                self._handed += message.outcome.value
            return None
        if isinstance(message, FanoutStatus):
            return {"handed_out": self._handed}
        return super().on_receive(message)

    def _wake(self, route: RouteCopies) -> int:
        wake_bots(self._services, [copy.bot_id for copy in route.copies], route.signal_id)
        return len(route.copies)
