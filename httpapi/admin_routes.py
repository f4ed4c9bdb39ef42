"""GET /api/admin/swift-metrics: the Swift summary (totals, per market, errors) as JSON, read
from the Prometheus metrics.

The numbers are computed from the process's own collectors (observability.trading_metrics),
or in a multi-process node from the merged metrics of all its processes (what /metrics
serves), summing their label sets at request time, so the JSON and /metrics never disagree and
nothing is counted twice. Every order handed to Swift is one of `totalOrders`; it traded
(`ordersSuccess`) or fell back (`ordersFallback`) at most once, so both rates are within
[0, 1]; `ordersFailed` counts the orders Swift failed (a fallback is not a failure, see
trading_metrics). Ratios and means with a zero denominator are 0. Markets and reasons are
listed once they have an order (the metrics themselves start every known one at 0). Swift
health is asked of its owner, the SwiftGateway actor (null when the tree cannot answer).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pykka
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from actors.messages import IsHealthy
from actors.services import Services
from httpapi.ops_routes import require_admin
from httpapi.router import Request, Response, Router
from observability import multiprocess
from observability.trading_metrics import (
    SWIFT_API_LATENCY,
    SWIFT_AVG_FILL_TIME_BY_MARKET,
    SWIFT_AVG_PRICE_IMPROVEMENT_BY_MARKET,
    SWIFT_ERRORS_BY_TYPE,
    SWIFT_FALLBACK_REASONS,
    SWIFT_ORDERS,
    SWIFT_ORDERS_FAILED,
    SWIFT_ORDERS_FALLBACK,
    SWIFT_ORDERS_SUCCESS,
    SWIFT_PRICE_IMPROVEMENT,
)
from storage.venue_health import read as read_probe
from supervision import NoSuchChild, whereis

ASK_TIMEOUT_S = 2.0


def _families(metric: MetricWrapperBase) -> Iterable[Metric]:
    """One metric's current families: the node's (every process) in multiprocess mode, read by
    name from node_registry(), else this process's own."""
    if not multiprocess.enabled():
        return metric.collect()
    name = next(iter(metric.describe())).name
    return [family for family in multiprocess.node_registry().collect() if family.name == name]


def _samples(metric: MetricWrapperBase, suffix: str = "") -> Iterable[tuple[dict[str, str],
                                                                            float]]:
    """(labels, value) of one metric's samples named `<name><suffix>` (e.g. "_total")."""
    for family in _families(metric):
        wanted = family.name + suffix
        for sample in family.samples:
            if sample.name == wanted:
                yield sample.labels, sample.value


def _total(metric: MetricWrapperBase, suffix: str = "_total") -> float:
    """A counter summed over every label set."""
    return sum(value for _, value in _samples(metric, suffix))


def _by(metric: MetricWrapperBase, label: str, suffix: str = "_total") -> dict[str, float]:
    """A counter (or gauge, suffix "") summed per value of one label."""
    sums: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metric, suffix):
        sums[labels[label]] += value
    return dict(sums)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def _mean(histogram: MetricWrapperBase) -> float:
    """A histogram's mean over its life (_sum / _count), 0 before any observation."""
    return _ratio(_total(histogram, "_sum"), _total(histogram, "_count"))


def _weighted_mean(means: dict[str, float], counts: dict[str, float]) -> float:
    """The mean over every label value from each one's mean and count."""
    return _ratio(sum(means.get(k, 0.0) * n for k, n in counts.items()), sum(counts.values()))


def _seen(counts: dict[str, float]) -> dict[str, int]:
    """The non-zero counts, sorted by key."""
    return {key: _count(n) for key, n in sorted(counts.items()) if n}


def _count(value: float) -> int:
    """Counters are floats in prometheus_client; order counts are whole numbers."""
    return round(value)


def swift_metrics_summary(swift_healthy: bool | None) -> dict[str, Any]:
    """The /api/admin/swift-metrics body: summary, byMarket, errorBreakdown, then the failure and
    fallback reasons and Swift's health."""
    submitted = _by(SWIFT_ORDERS, "market")
    success = _by(SWIFT_ORDERS_SUCCESS, "market")
    failed = _by(SWIFT_ORDERS_FAILED, "reason")
    fallback = _by(SWIFT_ORDERS_FALLBACK, "market")
    fill_ms = _by(SWIFT_AVG_FILL_TIME_BY_MARKET, "market", "")
    # swift_price_improvement_bps has negative buckets, hence no _sum: means come from the gauge
    improvement = _by(SWIFT_AVG_PRICE_IMPROVEMENT_BY_MARKET, "market", "")
    improved = _by(SWIFT_PRICE_IMPROVEMENT, "market", "_count")
    total = sum(submitted.values())
    markets = sorted(m for m, n in submitted.items() if n)
    return {
        "summary": {
            "totalOrders": _count(total),
            "successRate": _ratio(sum(success.values()), total),
            "fallbackRate": _ratio(sum(fallback.values()), total),
            "failureRate": _ratio(sum(failed.values()), total),
            "avgLatencyMs": _mean(SWIFT_API_LATENCY),
            "avgPriceImprovementBps": _weighted_mean(improvement, improved),
            "ordersSuccess": _count(sum(success.values())),
            "ordersFailed": _count(sum(failed.values())),
            "ordersFallback": _count(sum(fallback.values())),
        },
        "byMarket": {market: {
            "ordersTotal": _count(submitted.get(market, 0)),
            "ordersSuccess": _count(success.get(market, 0)),
            "ordersFallback": _count(fallback.get(market, 0)),
            "successRate": _ratio(success.get(market, 0), submitted.get(market, 0)),
            "fallbackRate": _ratio(fallback.get(market, 0), submitted.get(market, 0)),
            "avgFillTimeMs": fill_ms.get(market, 0.0),
            "avgPriceImprovementBps": improvement.get(market, 0.0),
        } for market in markets},
        "errorBreakdown": _seen(_by(SWIFT_ERRORS_BY_TYPE, "reason")),
        "failureReasons": _seen(failed),
        "fallbackReasons": _seen(_by(SWIFT_FALLBACK_REASONS, "reason")),
        "swiftHealthy": swift_healthy,
    }


def ask_swift_healthy(services: Services) -> bool | None:
    """The SwiftGateway's own verdict (an intake has none: the shared Swift probe's), or None
    when the tree cannot answer in time."""
    if not services.role.executes:
        shared = read_probe(services.db, "swift")
        return None if shared is None else shared.ok
    if services.root is None:
        return None
    with contextlib.suppress(NoSuchChild, LookupError, pykka.Timeout, pykka.ActorDeadError):
        gateway = whereis(services.root, "swift_gateway", ASK_TIMEOUT_S)
        return bool(gateway.ask(IsHealthy(), timeout=ASK_TIMEOUT_S))
    return None


def add_admin_routes(router: Router, services: Services) -> None:
    """Register GET /api/admin/swift-metrics (admin bearer token)."""

    def swift_metrics(request: Request) -> Response:
        require_admin(services, request)
        return Response(200, swift_metrics_summary(ask_swift_healthy(services)))

    router.add("GET", "/api/admin/swift-metrics", swift_metrics)
