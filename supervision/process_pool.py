"""ProcessPool: an actor that keeps OS processes running, as a supervisor keeps actors.

The node's intake runs its worker processes under one: each exited process is started again
after a backoff; more deaths than the intensity allows within its period crash the pool, so
the supervision tree (and, past its own intensity, systemd) takes over. On stop it asks every
process to stop (SIGTERM: a worker drains its orders in flight) and kills those that outlive
the grace period. A child dies with its parent (PR_SET_PDEATHSIG), so a kill -9 of the intake
leaves no worker executing bots nobody supervises.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gevent

from supervision.backoff import Backoff
from supervision.spec import Intensity
from supervision.supervised_actor import SupervisedActor

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class TooManyDeaths(Exception):
    """Processes of the pool died more often than its intensity allows."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process to keep running: its name, command line and environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


@dataclass(frozen=True)
class _Exited:
    name: str
    pid: int
    code: int


@dataclass(frozen=True)
class _Start:
    name: str


@dataclass(frozen=True)
class PoolStatus:
    """Ask for {name: pid or None while it is being restarted}."""


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec hook: the child gets SIGKILL when its parent dies (or has died already)."""

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class ProcessPool(SupervisedActor):
    """Keeps the processes of `specs` running; see the module docstring."""

    def __init__(self, specs: Sequence[ProcessSpec], intensity: Intensity, backoff: Backoff,
                 stop_grace_s: float, on_exit: Callable[[int], None] = lambda _pid: None,
                 on_restart: Callable[[str], None] = lambda _name: None) -> None:
        super().__init__()
        self._specs = {spec.name: spec for spec in specs}
        self._intensity = intensity
        self._backoff = backoff
        self._grace_s = stop_grace_s
        self._on_exit = on_exit  # told each dead process's pid (metrics clean-up)
        self._on_restart = on_restart  # told each process name about to be started again
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._deaths: deque[float] = deque()
        self._consecutive: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._rng = random.Random()

    def on_start(self) -> None:
        for name in self._specs:
            self._start(name)

    def _start(self, name: str) -> None:
        spec = self._specs[name]
        proc = subprocess.Popen(list(spec.argv), env=dict(spec.env), stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent(os.getpid()))
        self._procs[name] = proc
        self._started_at[name] = time.monotonic()
        log.info("worker process %s started (pid %d)", name, proc.pid)
        self._track(gevent.spawn(self._watch, name, proc))

    def _watch(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        self._tell_self(_Exited(name, proc.pid, code))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Exited):
            return self._exited(message)
        if isinstance(message, _Start):
            self._start(message.name)
            return None
        if isinstance(message, PoolStatus):
            return {name: (proc.pid if proc.poll() is None else None)
                    for name, proc in self._procs.items()}
        return super().on_receive(message)

    def _exited(self, exited: _Exited) -> None:
        self._on_exit(exited.pid)
        log.error("worker process %s (pid %d) exited with %d", exited.name, exited.pid,
                  exited.code)
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self._intensity.period_s:
            self._deaths.popleft()
        if len(self._deaths) > self._intensity.max_restarts:
            raise TooManyDeaths(f"{len(self._deaths)} worker deaths within "
                                f"{self._intensity.period_s:g} s")
        stable = now - self._started_at.get(exited.name, now) >= self._backoff.stable_s
        consecutive = 1 if stable else self._consecutive.get(exited.name, 0) + 1
        self._consecutive[exited.name] = consecutive
        self._on_restart(exited.name)
        self.send_later(self._backoff.delay(consecutive, self._rng), _Start(exited.name))

    def on_exit(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace_s
        for name, proc in self._procs.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process %s did not stop within %.0f s: killed", name,
                          self._grace_s)
                proc.kill()
                proc.wait()
            self._on_exit(proc.pid)
