"""Base actor whose every way of dying is caught and reported, so a supervisor can restart it.

Plain Pykka treats failures unevenly: an exception in a handler reached by `ask` is handed to
the caller and the actor lives on; an exception reached by `tell` or raised in `on_start`
stops the actor silently; and a BaseException (gevent.Timeout, GreenletExit) inside a handler
stops *every* actor of the process. Here all of these end the actor alone ("let it crash"),
the `ask` caller still receives the error, and the exit (normal or not) reaches the supervisor
as a `ChildExited` message.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import gevent
import pykka
from gevent import Greenlet
from greenlet import GreenletExit

log = logging.getLogger(__name__)


class ActorCrashed(Exception):
    """A BaseException inside a handler, converted so that Pykka stops only this actor."""


class DrillCrash(Exception):
    """Raised on purpose by a crash drill (`quantumvault crash NAME`)."""


class Refusal(Exception):
    """A handler's "no" to a bad request: raised to the caller, and the actor lives on.

    Every other exception in a handler means the actor itself is broken, so it crashes and is
    restarted clean; a refusal (unknown name, invalid input) says nothing about the actor.
    """


class ActorKilled(GreenletExit):
    """Thrown into an actor's greenlet when it did not stop within its stop timeout."""


@dataclass(frozen=True)
class ChildExited:
    """Sent to the supervisor when an actor's loop ends; `reason` is None for a normal stop."""

    name: str
    urn: str
    reason: BaseException | None


@dataclass(frozen=True)
class Ready:
    """Handshake: answered once `on_start` has finished, so starts can be ordered."""


@dataclass(frozen=True)
class CrashDrill:
    """Makes the receiving actor fail, to prove supervision works in a running daemon."""


@dataclass(frozen=True)
class Outcome:
    """The result of background work, delivered back to the actor's mailbox."""

    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Pending:
    """An answer that is not ready yet: the handler returned at once and work goes on elsewhere.

    Owners of slow I/O answer an ask with a Pending, so their mailbox stays free; `request`
    waits on either kind of answer.
    """

    future: pykka.Future[Any]


def request(ref: pykka.ActorRef[Any], message: Any, timeout: float) -> Any:
    """Ask `ref` and wait (within `timeout` in all) for the answer, pending or not."""
    deadline = time.monotonic() + timeout
    answer = ref.ask(message, timeout=timeout)
    if isinstance(answer, Pending):
        return answer.future.get(timeout=max(0.0, deadline - time.monotonic()))
    return answer



@dataclass(frozen=True)
class Link:
    """Who to tell when an actor exits, and under which name."""

    name: str
    notify: Callable[[ChildExited], None]


_spawn_link: contextvars.ContextVar[Link | None] = contextvars.ContextVar(
    "spawn_link", default=None
)


@dataclass(frozen=True)
class LiveActor:
    """What the process knows of one running actor: its greenlet, metric label and mailbox."""

    greenlet: Greenlet
    label: str
    inbox: Any


_live: dict[str, LiveActor] = {}


def live_actors() -> list[LiveActor]:
    """Snapshot of the running supervised actors (for metrics and drills)."""
    return list(_live.values())


def start_linked(actor_class: type[SupervisedActor], link: Link, *args: Any, **kwargs: Any
                 ) -> pykka.ActorRef[Any]:
    """Start `actor_class` so that its exit is reported through `link`."""
    token = _spawn_link.set(link)
    try:
        return actor_class.start(*args, **kwargs)
    finally:
        _spawn_link.reset(token)


def kill_actor(ref: pykka.ActorRef[Any], timeout: float) -> None:
    """Throw ActorKilled into an actor's greenlet (the brutal kill after a stop timeout)."""
    live = _live.get(ref.actor_urn)
    if live is not None:
        live.greenlet.kill(ActorKilled, block=True, timeout=timeout)


class SupervisedActor(pykka.ThreadingActor):
    """A Pykka actor that reports its exit and never takes other actors down with it."""

    use_daemon_thread: ClassVar[bool] = True
    """The tree stops actors explicitly; and CPython's bookkeeping of non-daemon threads costs
    O(n) per thread start, which made starting 10k actors quadratic."""

    metrics_name: ClassVar[str | None] = None
    """Label under which this actor's mailbox depth is summed (default: its name)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        super().__init__()
        link = _spawn_link.get()
        self._link = link
        self.name = link.name if link else type(self).__name__
        self._exit_reason: BaseException | None = None
        self._tasks: set[Greenlet] = set()

    # --- helpers for subclasses -------------------------------------------------------------

    def send_later(self, delay_s: float, message: Any) -> None:
        """Deliver `message` to this actor after `delay_s`; cancelled if the actor exits."""
        self._track(gevent.spawn_later(max(0.0, delay_s), self._tell_self, message))

    def answer_later(self, work: Callable[[], Any], then: Callable[[Outcome], Any] | None = None
                     ) -> Pending:
        """Run slow `work` off the mailbox and answer the asker with its result when done.

        `then(outcome)`, when given, also becomes a message back to this actor (to update
        the state it owns from the result).
        """
        future: pykka.Future[Any] = pykka.ThreadingFuture()

        def _run() -> None:
            try:
                value = work()
            except Exception as exc:
                future.set_exception((type(exc), exc, exc.__traceback__))
                if then is not None:
                    self._tell_self(then(Outcome(error=exc)))
                return
            future.set(value)
            if then is not None:
                self._tell_self(then(Outcome(value=value)))

        self._track(gevent.spawn(_run))
        return Pending(future)

    def run_in_background(self, work: Callable[[], Any], then: Callable[[Outcome], Any]) -> None:
        """Run slow `work` off the mailbox; `then(outcome)` becomes a message back to us."""

        def _run() -> None:
            try:
                outcome = Outcome(value=work())
            except Exception as exc:
                outcome = Outcome(error=exc)
            self._tell_self(then(outcome))

        self._track(gevent.spawn(_run))

    def on_exit(self) -> None:
        """Release resources; runs in the actor's greenlet on every exit, normal or not."""

    # --- Pykka hooks ------------------------------------------------------------------------

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _track(self, task: Greenlet) -> None:
        self._tasks.add(task)
        task.link(self._tasks.discard)

    def _handle_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, Ready):
                return True
            if isinstance(message, CrashDrill):
                raise DrillCrash(f"crash drill in {self.name}")
            return super()._handle_receive(message)
        except Refusal:
            raise
        except Exception:
            self._handle_failure(*sys.exc_info())
            raise
        except BaseException as exc:
            self._handle_failure(*sys.exc_info())
            raise ActorCrashed(f"{type(exc).__name__} inside {self.name}") from exc

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._exit_reason is None:
            self._exit_reason = exception_value or ActorCrashed("unknown failure")
            if not isinstance(exception_value, ActorKilled):
                log.error(
                    "actor %s crashed: %s",
                    self.name,
                    type(exception_value).__name__,
                    exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
                )
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _actor_loop(self) -> None:
        _live[self.actor_urn] = LiveActor(
            gevent.getcurrent(), self.metrics_name or self.name, self.actor_inbox
        )
        try:
            super()._actor_loop()
        except BaseException:  # killed or interrupted while waiting for a message
            self._handle_failure(*sys.exc_info())
            self._actor_loop_teardown()
        finally:
            _live.pop(self.actor_urn, None)
            self._finish()

    def _finish(self) -> None:
        for task in list(self._tasks):
            task.kill(block=False)
        try:
            self.on_exit()
        except Exception:
            log.exception("on_exit of %s failed", self.name)
        if self._link is not None:
            try:
                self._link.notify(ChildExited(self.name, self.actor_urn, self._exit_reason))
            except pykka.ActorDeadError:
                log.debug("supervisor of %s is gone; exit not reported", self.name)
