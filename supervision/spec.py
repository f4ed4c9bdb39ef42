"""Child specifications: restart policy is data next to the child, as in OTP, not code inside it."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Strategy(enum.Enum):
    """Which siblings are restarted with a crashed child."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When a child that exited is started again."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit
    TEMPORARY = "temporary"  # never

    def wants_restart(self, abnormal: bool) -> bool:
        """Whether an exit of this kind is followed by a restart."""
        if self is Restart.PERMANENT:
            return True
        return self is Restart.TRANSIENT and abnormal


@dataclass(frozen=True)
class ChildSpec:
    """How to start one supervised actor, and what to do when it exits."""

    name: str
    actor_class: type
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    start_timeout: float = 10.0
    stop_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"child name must be non-empty and contain no '/': {self.name!r}")


@dataclass(frozen=True)
class Intensity:
    """At most `max_restarts` restarts within `period_s` seconds, else the supervisor gives up."""

    max_restarts: int = 10
    period_s: float = 60.0
