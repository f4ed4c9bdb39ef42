"""Supervision metrics: restarts per actor, and mailbox depths (read at scrape time in one
process, published every few seconds by each process of a multi-process node)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from supervision.supervised_actor import live_actors

RESTARTS = Counter(
    "supervisor_restarts", "Restarts of a supervised actor after it exited", ["actor"]
)
MAILBOX_HELP = "Messages waiting in actor mailboxes"
# The node's form of the collector below, in no registry (in a node the intake serves the merged
# files, not a registry). Each process holds its own mailboxes: livesum adds them up per actor
# label as one process does, and forgets a dead worker's.
MAILBOX_DEPTH = Gauge("actor_mailbox_depth", MAILBOX_HELP, ["actor"], registry=None,
                      multiprocess_mode="livesum")

_published: set[str] = set()


def mailbox_depths() -> dict[str, int]:
    """Queued messages per actor label, summed over this process's running actors."""
    depths: dict[str, int] = defaultdict(int)
    for live in live_actors():
        depths[live.label] += live.inbox.qsize()
    return dict(depths)


class MailboxDepthCollector(Collector):
    """Reports queued messages per actor label, summed, without touching the actors."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("actor_mailbox_depth", MAILBOX_HELP, labels=["actor"])
        for label, depth in sorted(mailbox_depths().items()):
            family.add_metric([label], depth)
        yield family


def publish_mailbox_depths() -> None:
    """Write this process's mailbox depths to MAILBOX_DEPTH (the collector cannot be read from
    another process); a label whose actors are gone drops to 0, as no series can be removed."""
    depths = mailbox_depths()
    for label in _published - depths.keys():
        MAILBOX_DEPTH.labels(actor=label).set(0)
    for label, depth in depths.items():
        MAILBOX_DEPTH.labels(actor=label).set(depth)
    _published.update(depths)


_collector: MailboxDepthCollector | None = None


def register_mailbox_collector() -> None:
    """Register the mailbox collector once per process (one-process mode)."""
    global _collector
    if _collector is None:
        _collector = MailboxDepthCollector()
        REGISTRY.register(_collector)
