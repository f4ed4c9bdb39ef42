"""Small actors used by the supervision tests."""

from __future__ import annotations

from typing import Any, ClassVar

import gevent
from gevent.event import Event
from gevent.queue import Queue
from greenlet import GreenletExit

from supervision import SupervisedActor


class Echo(SupervisedActor):
    """Answers what it is sent; fails in the ways the tests ask for."""

    journal: ClassVar[Queue | None] = None

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag

    def on_start(self) -> None:
        if Echo.journal is not None:
            Echo.journal.put(("start", self.name))

    def on_stop(self) -> None:
        if Echo.journal is not None:
            Echo.journal.put(("stop", self.name))

    def on_receive(self, message: Any) -> Any:
        if message == "raise":
            raise RuntimeError("handler failed")
        if message == "timeout":
            raise gevent.Timeout()
        if message == "greenlet_exit":
            raise GreenletExit()
        if message == "stop_self":
            self.stop()
            return None
        if isinstance(message, Event):
            message.wait()  # hangs until the test sets it
            return None
        return (self.tag, message)


class FlakyStart(SupervisedActor):
    """Fails in on_start the first `failures` times it is started (counted per class)."""

    starts: ClassVar[int] = 0
    failures: ClassVar[int] = 0

    def on_start(self) -> None:
        FlakyStart.starts += 1
        if FlakyStart.starts <= FlakyStart.failures:
            raise RuntimeError(f"start {FlakyStart.starts} fails")

    def on_receive(self, message: Any) -> Any:
        return ("started after", FlakyStart.starts)
