"""An OTP-style supervisor as a Pykka actor: ordered start, strategies, intensity, backoff.

Callers reach a child by name through its supervisor (`Whereis`; the messages, refusals and
lookups are supervision.supervisor_protocol's), never by a ref kept from before a restart.
Supervisors nest: a supervisor is itself a supervised actor, and when its restart intensity is
exceeded it stops its children (in reverse order) and crashes, which its own parent sees as an
abnormal exit. At the root, the runtime turns that into a non-zero exit.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka

from supervision.backoff import Backoff
from supervision.metrics import RESTARTS
from supervision.spec import ChildSpec, Intensity, Restart, Strategy
from supervision.supervised_actor import (
    ChildExited,
    CrashDrill,
    Link,
    Pending,
    Ready,
    SupervisedActor,
    kill_actor,
    start_linked,
)
from supervision.supervisor_protocol import (
    Children,
    ChildStartFailed,
    CrashChild,
    NoSuchChild,
    StartChild,
    Status,
    SupervisionEscalated,
    SupervisorEvent,
    TerminateChild,
    Whereis,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _RestartDue:
    name: str
    token: int


@dataclass
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef[Any] | None = None
    state: str = "stopped"  # running | restarting | stopped
    started_at: float = 0.0
    consecutive: int = 0
    restarts: int = 0
    last_backoff_s: float = 0.0
    token: int = 0
    waiters: list[pykka.Future[Any]] = field(default_factory=list)


class Supervisor(SupervisedActor):
    """Starts children in order, restarts them by strategy, stops them in reverse order."""

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity = Intensity(),
        backoff: Backoff = Backoff(),
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        listener: Callable[[SupervisorEvent], None] | None = None,
    ) -> None:
        super().__init__()
        self._listener = listener
        self._specs = list(children)
        self._children: dict[str, _Child] = {}
        self._strategy = strategy
        self._intensity = intensity
        self._backoff = backoff
        self._rng = random.Random(seed)
        self._clock = clock
        self._restart_times: deque[float] = deque()

    # --- life cycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        for spec in self._specs:
            child = self._add(spec)
            if self._start(child) is not None:
                raise ChildStartFailed(f"{self.name}: child {spec.name} failed to start")

    def on_stop(self) -> None:
        self._stop_children(list(self._children.values()))  # before `stop(block=True)` returns

    def on_exit(self) -> None:
        self._stop_children(list(self._children.values()))  # after a crash: nothing outlives us
        for child in self._children.values():
            self._fail_waiters(child)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            return self._on_child_exited(message)
        if isinstance(message, _RestartDue):
            return self._on_restart_due(message)
        if isinstance(message, Whereis):
            return self._whereis(message.name)
        if isinstance(message, StartChild):
            return self._start_child(message.spec)
        if isinstance(message, TerminateChild):
            return self._terminate_child(message.name)
        if isinstance(message, Status):
            return self._status()
        if isinstance(message, CrashChild):
            return self._crash_child(message.path)
        if isinstance(message, Children):
            return {name: child.ref for name, child in self._children.items()
                    if child.state == "running" and child.ref is not None}
        return super().on_receive(message)

    # --- starting and stopping ----------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        if spec.name in self._children:
            raise ValueError(f"{self.name}: duplicate child name {spec.name!r}")
        child = _Child(spec)
        self._children[spec.name] = child
        RESTARTS.labels(actor=spec.name)  # at 0 from the start: increase() sees the first restart
        return child

    def _start(self, child: _Child) -> BaseException | None:
        """Start one child and wait for its on_start; the failure, or None when it runs.

        A child that died in on_start has its ChildExited on the way; one whose constructor
        raised never existed, so the caller decides what that failure means.
        """
        spec = child.spec
        link = Link(spec.name, self._notify_self)
        try:
            ref = start_linked(spec.actor_class, link, *spec.args, **spec.kwargs)
        except Exception as exc:
            log.error("%s: constructing %s failed: %r", self.name, spec.name, exc)
            child.state = "stopped"
            return exc
        child.ref, child.state, child.started_at = ref, "running", self._clock()
        try:
            ref.ask(Ready(), timeout=spec.start_timeout)
        except pykka.ActorDeadError as exc:
            return exc
        except pykka.Timeout as exc:
            log.error("%s: %s did not finish on_start in %ss", self.name, spec.name,
                      spec.start_timeout)
            kill_actor(ref, spec.stop_timeout)
            return exc
        for waiter in child.waiters:
            waiter.set(ref)
        child.waiters.clear()
        return None

    def _notify_self(self, exited: ChildExited) -> None:
        self.actor_ref.tell(exited)

    def _stop_children(self, children: Sequence[_Child]) -> None:
        """Stop the given children in reverse start order, each within its stop timeout."""
        for child in reversed(children):
            ref, child.ref = child.ref, None
            if child.state == "running":
                child.state = "stopped"
            if ref is None:
                continue
            try:
                ref.stop(block=True, timeout=child.spec.stop_timeout)
            except pykka.Timeout:
                log.warning("%s: %s ignored stop for %ss; killing it", self.name,
                            child.spec.name, child.spec.stop_timeout)
                kill_actor(ref, child.spec.stop_timeout)
            except pykka.ActorDeadError:
                pass

    def _fail_waiters(self, child: _Child) -> None:
        for waiter in child.waiters:
            waiter.set_exception(
                (pykka.ActorDeadError, pykka.ActorDeadError(f"{child.spec.name} is gone"), None)
            )
        child.waiters.clear()

    # --- exits and restarts -------------------------------------------------------------------

    def _on_child_exited(self, exited: ChildExited) -> None:
        child = self._children.get(exited.name)
        if child is None or child.ref is None or child.ref.actor_urn != exited.urn:
            return  # an exit we caused, or a stale one
        child.ref = None
        child.state = "stopped"
        self._after_exit(child, exited.reason)

    def _after_exit(self, child: _Child, reason: BaseException | None) -> None:
        abnormal = reason is not None
        detail = type(reason).__name__ if abnormal else "normal"
        log.log(logging.WARNING if abnormal else logging.INFO, "%s: child %s exited (%s)",
                self.name, child.spec.name, detail)
        self._emit("exited", child.spec.name, detail)
        if not child.spec.restart.wants_restart(abnormal):
            if child.spec.restart is Restart.TEMPORARY:
                del self._children[child.spec.name]
            self._fail_waiters(child)
            return
        if self._intensity_exceeded():
            self._give_up(child)
        group = self._restart_group(child)
        self._stop_children([c for c in group if c is not child])
        now = self._clock()
        if now - child.started_at >= self._backoff.stable_s:
            child.consecutive = 0
        child.consecutive += 1
        delay = self._backoff.delay(child.consecutive, self._rng)
        for member in group:
            member.state = "restarting"
            member.token += 1
            member.last_backoff_s = delay
        self._emit("restart_scheduled", child.spec.name, backoff_s=delay)
        # members restart in start order, each after the failed child's backoff
        for member in group:
            self.send_later(delay, _RestartDue(member.spec.name, member.token))

    def _intensity_exceeded(self) -> bool:
        now = self._clock()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self._intensity.period_s:
            self._restart_times.popleft()
        return len(self._restart_times) > self._intensity.max_restarts

    def _give_up(self, child: _Child) -> None:
        message = (f"{self.name}: more than {self._intensity.max_restarts} restarts in "
                   f"{self._intensity.period_s}s (last: {child.spec.name}); giving up")
        log.error(message)
        self._emit("gave_up", child.spec.name, message)
        raise SupervisionEscalated(message)

    def _restart_group(self, child: _Child) -> list[_Child]:
        ordered = list(self._children.values())
        if self._strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self._strategy is Strategy.ONE_FOR_ALL:
            return ordered
        return ordered[ordered.index(child):]

    def _on_restart_due(self, due: _RestartDue) -> None:
        child = self._children.get(due.name)
        if child is None or child.state != "restarting" or child.token != due.token:
            return
        RESTARTS.labels(actor=child.spec.name).inc()
        child.restarts += 1
        log.info("%s: restarting %s (restart %d)", self.name, child.spec.name, child.restarts)
        failure = self._start(child)
        if failure is None:
            self._emit("restarted", child.spec.name)
        elif child.ref is None:  # the constructor raised: no exit message will come
            self._after_exit(child, failure)

    def _emit(self, kind: str, child: str, detail: str = "", backoff_s: float = 0.0) -> None:
        if self._listener is not None:
            self._listener(SupervisorEvent(self.name, kind, child, detail, backoff_s))

    # --- queries and commands -----------------------------------------------------------------

    def _whereis(self, name: str) -> pykka.ActorRef[Any] | Pending:
        child = self._children.get(name)
        if child is None or child.state == "stopped":
            raise NoSuchChild(f"{self.name}: no running child {name!r}")
        if child.state == "running" and child.ref is not None:
            return child.ref
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        child.waiters.append(future)
        return Pending(future)

    def _start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any] | Pending:
        existing = self._children.get(spec.name)
        if existing is not None and existing.state != "stopped":
            return self._whereis(spec.name)
        if existing is not None:
            del self._children[spec.name]
        child = self._add(spec)
        failure = self._start(child)
        if failure is not None:
            del self._children[spec.name]  # its exit, if one comes, is ignored: no restarts
            raise ChildStartFailed(f"{self.name}: child {spec.name} failed to start: "
                                   f"{type(failure).__name__}")
        assert child.ref is not None
        return child.ref

    def _terminate_child(self, name: str) -> bool:
        child = self._children.pop(name, None)
        if child is None:
            return False
        self._stop_children([child])
        self._fail_waiters(child)
        return True

    def _status(self) -> dict[str, Any]:
        children: dict[str, Any] = {}
        for name, child in self._children.items():
            entry: dict[str, Any] = {"state": child.state, "restarts": child.restarts,
                                     "last_backoff_s": round(child.last_backoff_s, 6)}
            if child.ref is not None and issubclass(child.spec.actor_class, Supervisor):
                try:
                    entry["children"] = child.ref.ask(Status(), block=True,
                                                      timeout=2.0)["children"]
                except (pykka.Timeout, pykka.ActorDeadError):
                    entry["children"] = None
            children[name] = entry
        return {"strategy": self._strategy.value, "children": children}

    def _crash_child(self, path: str) -> bool:
        head, _, rest = path.partition("/")
        child = self._children.get(head)
        if child is None or child.ref is None:
            raise NoSuchChild(f"{self.name}: no running child {head!r}")
        if not rest:
            child.ref.tell(CrashDrill())
            return True
        if not issubclass(child.spec.actor_class, Supervisor):
            raise NoSuchChild(f"{self.name}: {head!r} has no children")
        return bool(child.ref.ask(CrashChild(rest), block=True, timeout=child.spec.stop_timeout))
