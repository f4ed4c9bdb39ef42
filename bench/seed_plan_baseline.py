"""The original design's fan-out, for the venue-speed benchmark's baseline: batches of 5 orders
with 100 ms pauses, each batch awaited until its copies are final."""

import dataclasses
import logging

import gevent

from actors.dispatch import bot_ref
from actors.fanout import FanoutCoordinator
from actors.intake_listener import IntakeListener
from actors.messages import ProcessSignal, RouteCopies
from actors.services import Services
from actors.tree import root_children
from storage.signals import SignalWaiter
from supervision import ChildSpec

log = logging.getLogger("venue_speed_bench")

BATCH = 5
PAUSE_S = 0.1
BATCH_TIMEOUT_S = 120.0


class SeedPlanFanout(FanoutCoordinator):
    """The fan-out actor, or (while `batched`) the original design's routing: 5 bots at a time, each
    batch awaited until its copies are final, 100 ms between batches."""

    batched = False

    def _wake(self, route: RouteCopies) -> int:
        if not SeedPlanFanout.batched:
            return super()._wake(route)
        waiter = SignalWaiter(self._services.db.dsn)
        try:
            for start in range(0, len(route.copies), BATCH):
                if start:
                    gevent.sleep(PAUSE_S)
                batch = route.copies[start:start + BATCH]
                for copy in batch:
                    bot_ref(self._services, copy.bot_id).tell(ProcessSignal(copy.copy_id))
                try:
                    waiter.wait([c.copy_id for c in batch], BATCH_TIMEOUT_S)
                except TimeoutError:
                    log.error("baseline batch not final in %ss; going on", BATCH_TIMEOUT_S)
        finally:
            waiter.close()
        return len(route.copies)


class SeedPlanIntake(IntakeListener):
    """The intake listener, without its periodic backlog sweep while the baseline runs: the
    sweep wakes every bot with accepted signals, which would release the copies the baseline's
    batches hold back (the original design had no such sweep)."""

    def _sweep(self) -> None:
        if not SeedPlanFanout.batched:
            super()._sweep()


def seed_plan_changes(services: Services) -> dict[str, ChildSpec | None]:
    """The tree's fan-out and intake listener, as the subclasses that can route the baseline's
    way (only while `SeedPlanFanout.batched`)."""
    replaced = {"fanout": SeedPlanFanout, "intake_listener": SeedPlanIntake}
    return {spec.name: dataclasses.replace(spec, actor_class=replaced[spec.name])
            for spec in root_children(services) if spec.name in replaced}
