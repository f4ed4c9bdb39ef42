"""Gauges a process computes when asked, made visible to the node's one /metrics.

In one process they are computed at scrape time (the mailbox collector, the grant gauges'
set_function callbacks). In a multi-process node the intake's scrape reads files and cannot
run another process's code, so every process writes their current values to its own files
now and then every REFRESH_S seconds, from a greenlet.
"""

from __future__ import annotations

import logging

import gevent
from prometheus_client import Gauge

from observability.multiprocess import enabled
from observability.trading_metrics import (
    GRANT_MIN_SECONDS_LEFT_WITH_POSITION,
    GRANTS_LAPSED_WITH_POSITION,
)
from supervision.metrics import publish_mailbox_depths, register_mailbox_collector

log = logging.getLogger(__name__)

REFRESH_S = 5.0  # well under a scrape interval: a value is at most this much older than today

# Gauges given a set_function (custody.signing_keys.watch_grants, in the processes that hold
# bots): writing what collect() answers stores the callback's value where the process has one,
# and rewrites the unchanged value where it has none (their modes ignore those: see the gauges).
FUNCTION_GAUGES: tuple[Gauge, ...] = (GRANTS_LAPSED_WITH_POSITION,
                                      GRANT_MIN_SECONDS_LEFT_WITH_POSITION)

_refresher: gevent.Greenlet | None = None


def refresh_process_gauges() -> None:
    """Write this process's mailbox depths and function gauges to its metric files once."""
    publish_mailbox_depths()
    for gauge in FUNCTION_GAUGES:
        for family in gauge.collect():
            gauge.set(family.samples[0].value)


def _refresh_forever(interval_s: float) -> None:
    """Refresh every `interval_s`; a failed round is logged and the next one tried."""
    while True:
        gevent.sleep(interval_s)
        try:
            refresh_process_gauges()
        except Exception:
            log.exception("could not refresh the process gauges")


def start_process_gauges(interval_s: float = REFRESH_S) -> None:
    """Make this process's computed gauges reach /metrics, once per process: the mailbox
    collector in one process; in a node, a first refresh now and a greenlet for the next."""
    global _refresher
    if not enabled():
        register_mailbox_collector()
        return
    if _refresher is None:
        refresh_process_gauges()
        _refresher = gevent.spawn(_refresh_forever, interval_s)
