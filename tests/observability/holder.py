"""An actor whose mailbox the tests can fill to a known depth (in this process or a child)."""

from __future__ import annotations

from typing import Any, ClassVar

from gevent.event import Event

from supervision import SupervisedActor


class Holder(SupervisedActor):
    """Blocks on a `(taken, release)` message: sets `taken`, then waits for `release`, so every
    message told after `taken` is set stays queued."""

    metrics_name: ClassVar[str | None] = "holder"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            taken, release = message
            taken.set()
            release.wait()
        return None


def hold(holder: Any, queued: int) -> Event:
    """Block `holder` and queue `queued` messages behind it; set the returned event to release."""
    taken, release = Event(), Event()
    holder.tell((taken, release))
    taken.wait()
    for _ in range(queued):
        holder.tell("queued")
    return release
