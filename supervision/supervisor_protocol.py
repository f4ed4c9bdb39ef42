"""What callers say to a supervisor and what it answers: messages, refusals, events, lookups.

Callers reach a child by name through its supervisor (`Whereis`, or `whereis`/`call` below),
never by a ref kept from before a restart; supervision.supervisor is the actor that answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka

from supervision.spec import ChildSpec
from supervision.supervised_actor import Refusal, request


class SupervisionEscalated(Exception):
    """Restart intensity was exceeded: this supervisor gave up and passes the failure up."""


class NoSuchChild(Refusal, LookupError):
    """The supervisor has no running child of that name."""


class ChildStartFailed(Refusal):
    """A child could not be started (a refusal to a StartChild caller; a crash in on_start)."""


@dataclass(frozen=True)
class Whereis:
    """Ask for a child's current ref; answered with a ref or a `Pending` while it restarts."""

    name: str


@dataclass(frozen=True)
class StartChild:
    """Add a child at runtime and start it (idempotent by name: answers the running ref)."""

    spec: ChildSpec


@dataclass(frozen=True)
class TerminateChild:
    """Stop a child and forget its spec."""

    name: str


@dataclass(frozen=True)
class Status:
    """Ask for the state of every child, nested supervisors included."""


@dataclass(frozen=True)
class Children:
    """Ask for the running children: name -> reference, in start order."""


@dataclass(frozen=True)
class CrashChild:
    """Deliver a crash drill to the child at a '/'-separated path below this supervisor."""

    path: str


@dataclass(frozen=True)
class SupervisorEvent:
    """What a supervisor did: "exited", "restart_scheduled", "restarted" or "gave_up"."""

    supervisor: str
    kind: str
    child: str
    detail: str = ""
    backoff_s: float = 0.0


def whereis(supervisor: pykka.ActorRef[Any], name: str, timeout: float) -> pykka.ActorRef[Any]:
    """Resolve a child by name, waiting (up to `timeout`) while it restarts."""
    return request(supervisor, Whereis(name), timeout)


def call(supervisor: pykka.ActorRef[Any], name: str, message: Any, timeout: float) -> Any:
    """Ask a child by name: resolves it through the supervisor, so restarts are invisible.

    If the resolved child dies before it handles the message, Pykka answers ActorDeadError
    ("stopped before handling the message"), so asking its successor cannot act twice.
    """
    deadline = time.monotonic() + timeout
    while True:
        ref = whereis(supervisor, name, max(0.0, deadline - time.monotonic()))
        try:
            return ref.ask(message, timeout=max(0.0, deadline - time.monotonic()))
        except pykka.ActorDeadError:
            if time.monotonic() >= deadline:
                raise
