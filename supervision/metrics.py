"""Supervision metrics: restarts per actor, and mailbox depths read at scrape time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from supervision.supervised_actor import live_actors

RESTARTS = Counter(
    "supervisor_restarts", "Restarts of a supervised actor after it exited", ["actor"]
)


class MailboxDepthCollector(Collector):
    """Reports queued messages per actor label, summed, without touching the actors."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depths: dict[str, int] = defaultdict(int)
        for live in live_actors():
            depths[live.label] += live.inbox.qsize()
        family = GaugeMetricFamily(
            "actor_mailbox_depth", "Messages waiting in actor mailboxes", labels=["actor"]
        )
        for label, depth in sorted(depths.items()):
            family.add_metric([label], depth)
        yield family


_collector: MailboxDepthCollector | None = None


def register_mailbox_collector() -> None:
    """Register the mailbox collector once per process."""
    global _collector
    if _collector is None:
        _collector = MailboxDepthCollector()
        REGISTRY.register(_collector)
