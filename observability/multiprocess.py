"""Prometheus multiprocess mode: one /metrics for every process of a node, merged from files.

prometheus_client chooses its value store once, at import: with PROMETHEUS_MULTIPROC_DIR in
the environment, every metric of the process writes to mmap'ed files in that directory, and a
MultiProcessCollector merges the files of all processes at scrape time (counters and
histograms summed, each gauge by its `multiprocess_mode`). The node sets the variable for the
intake and its workers; without it (one process) the default registry is served as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    """True in a process of a multi-process node, whose metrics go to the shared directory."""
    return bool(os.environ.get(ENV_VAR))


def prepare_dir(path: Path) -> None:
    """Create the node's metric directory and delete the files of earlier runs, so that no dead
    process is counted: the intake calls it once, before any worker starts. Files of this very
    process are kept when it already writes there (it opened them at import)."""
    path.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db" if enabled() else None
    for stale in path.glob("*.db"):
        if own is None or not stale.name.endswith(own):
            stale.unlink(missing_ok=True)


def mark_dead(pid: int) -> None:
    """Forget the live gauges of a worker that exited (its counters and histograms stay summed):
    the intake calls it when it reaps a worker process."""
    if enabled():
        mark_process_dead(pid, os.environ[ENV_VAR])


class _NodeCollector(Collector):
    """The merged files of every process, shown as one process shows its own metrics."""

    def __init__(self, path: str) -> None:
        self._files = MultiProcessCollector(None, path)

    def collect(self) -> Iterator[Metric]:
        for family in self._files.collect():
            if family.type == "histogram" and any(
                    s.name == family.name + "_bucket" and float(s.labels["le"]) < 0
                    for s in family.samples):
                # One process leaves out the _sum of a histogram with negative buckets (as
                # OpenMetrics requires), but its files hold one: drop it here too.
                family.samples = [s for s in family.samples if s.name != family.name + "_sum"]
            yield family


def node_registry() -> CollectorRegistry:
    """What /metrics and the admin summary read: the whole node in multiprocess mode, else this
    process's default registry."""
    if not enabled():
        return REGISTRY
    registry = CollectorRegistry()
    registry.register(_NodeCollector(os.environ[ENV_VAR]))
    return registry
