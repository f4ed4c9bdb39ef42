"""The trading metrics, under fixed names (alert rules and dashboards query them), defined once
for every actor that counts.

Counters are exposed with Prometheus' `_total` suffix (`swift_orders_success` is scraped as
`swift_orders_success_total`). Labels are bounded: markets come from the venue's market table,
reasons from the fixed error taxonomy, never from free text.

What one Swift order counts (the alert rules rely on it). Every order handed to the Swift
gateway is one `swift_orders{market}`, whether it reached the wire or not; it then ends in at
most one of `swift_orders_success` (it traded) or `swift_orders_fallback` (it went on-chain
after Swift could not trade it), so both ratios to `swift_orders` stay within [0, 1].
`swift_orders_failed{reason}` counts orders that Swift failed: the service erred (no answer,
429, 5xx), refused the order we built (bad signature, auction, slot too old, ...), or the
gateway itself broke. A fallback is not a failure, and neither is an auction that expired for
want of liquidity or a refusal about the user's own account (collateral, size, delisted
market, missing user): those are `swift_errors_by_type` only. A failure may also fall back (a
503, then on-chain): it is then counted once in each.

Label values known in advance exist from the start at 0 (`prime_market_series` for the venue's
markets, the fixed vocabularies below at import), so `rate()` and `increase()` see the first
event of a series instead of its appearance.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

MS_BUCKETS = (25, 50, 100, 250, 500, 1000, 2000, 3000, 5000, 10000, 30000)
BPS_BUCKETS = (-50, -20, -10, -5, -2, 0, 2, 5, 10, 20, 50)

# --- Swift API -----------------------------------------------------------------------------
SWIFT_ORDERS = Counter("swift_orders", "Orders handed to the Swift gateway (sent or not)",
                       ["market"])
SWIFT_ORDERS_SUCCESS = Counter("swift_orders_success",
                               "Swift orders that traded (filled wholly or partly)", ["market"])
SWIFT_ORDERS_FAILED = Counter("swift_orders_failed", "Swift orders that Swift failed (service"
                              " error, refused as malformed, gateway error), by reason",
                              ["reason"])
SWIFT_ORDERS_FALLBACK = Counter("swift_orders_fallback",
                                "Swift orders that went on-chain after Swift could not trade them",
                                ["market"])
SWIFT_API_LATENCY = Histogram("swift_api_latency_ms", "Swift POST /orders round trip (ms)",
                              buckets=MS_BUCKETS)
SWIFT_AUCTION_DURATION = Histogram("swift_auction_duration_ms",
                                   "Time from Swift submission to fill (ms)", buckets=MS_BUCKETS)
SWIFT_PRICE_IMPROVEMENT = Histogram("swift_price_improvement_bps",
                                    "Fill price against the oracle, in the trader's favour (bps)",
                                    ["market"], buckets=BPS_BUCKETS)
# --- per market ----------------------------------------------------------------------------
SWIFT_ORDERS_BY_MARKET = Counter("swift_orders_by_market", "Swift orders per market",
                                 ["market"])
# These three are ratios and means of one process's gateway: a sum over the processes of a node
# means nothing, so a node shows its worst live process (the node-wide success ratio is
# swift_orders_success_total / swift_orders_total).
SWIFT_SUCCESS_RATE_BY_MARKET = Gauge("swift_success_rate_by_market",
                                     "Filled / submitted Swift orders per market", ["market"],
                                     multiprocess_mode="livemin")
SWIFT_AVG_FILL_TIME_BY_MARKET = Gauge("swift_avg_fill_time_by_market",
                                      "Mean Swift submission-to-fill time per market (ms)",
                                      ["market"], multiprocess_mode="livemax")
# A histogram with negative buckets has no _sum (OpenMetrics), so the mean is kept here.
SWIFT_AVG_PRICE_IMPROVEMENT_BY_MARKET = Gauge(
    "swift_avg_price_improvement_by_market",
    "Mean price improvement of Swift fills against the oracle per market since start (bps)",
    ["market"], multiprocess_mode="livemin")
# --- errors --------------------------------------------------------------------------------
SWIFT_ERRORS_BY_TYPE = Counter("swift_errors_by_type",
                               "Swift orders that did not trade, by taxonomy class and reason",
                               ["type", "reason"])
SWIFT_RETRIES = Counter("swift_retries", "Retry attempts of trades")
SWIFT_FALLBACK_REASONS = Counter("swift_fallback_reasons",
                                 "Why Swift orders went on-chain (the Swift outcome)", ["reason"])
# Every process holds it (0 until a gateway starts), so a min would say down wherever no gateway
# runs: 1 while a live gateway of the node considers Swift healthy. Each process's own view is
# dependency_up{probe="swift"}, a min.
SWIFT_HEALTHY = Gauge("swift_healthy", "1 while the Swift gateway considers Swift healthy",
                      multiprocess_mode="livemax")
SWIFT_AUDIT_LOG_FAILURES = Counter("swift_audit_log_failures",
                                   "Swift order events that could not be written to"
                                   " swift_order_logs, by event type", ["event"])
# --- legacy and the runtime ----------------------------------------------------------------
LEGACY_ORDERS = Counter("legacy_orders", "On-chain placeAndTakePerpOrder transactions",
                        ["market", "outcome"])
# Each legacy executor sets 1 for its endpoint, 0 for the other: 1 where a live process uses it.
RPC_ACTIVE_ENDPOINT = Gauge("rpc_active_endpoint", "1 for the RPC endpoint in use",
                            ["endpoint"], multiprocess_mode="livemax")
RPC_RATE_LIMITED = Counter("rpc_rate_limited", "RPC answers HTTP 429 (rate limited), by endpoint",
                           ["endpoint"])
# Counts of a whole database table, read again by every process that runs the actor: a sum
# would count them once per process, so the latest reading wins (a stopped actor's goes stale).
RETRY_QUEUE_DEPTH = Gauge("retry_queue_depth", "Retry jobs pending or running", ["priority"],
                          multiprocess_mode="livemostrecent")
PROFIT_SHARE_IOUS_PENDING = Gauge("profit_share_ious_pending", "Unpaid profit-share IOUs",
                                  multiprocess_mode="livemostrecent")
GUARD_REFUSALS = Counter("guard_refusals", "Signatures that could move funds refused right"
                         " before signing (emergency stop, row MACs, caps), by what was to be"
                         " signed (order | withdrawal) and fixed reason label",
                         ["what", "reason"])
WEBHOOK_LATENCY = Histogram("webhook_latency_seconds", "Webhook request to acknowledgement (s)",
                            ["outcome"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3))
SIGNALS = Counter("signals", "Signals received", ["source", "outcome"])
TRADES = Counter("trades", "Trades recorded", ["method", "status"])

# --- label values known in advance ------------------------------------------------------------

# The class (`type` of swift_errors_by_type) of every reason the Swift taxonomy can refuse an
# order with (venue/swift_errors.py REASONS, less the `published*` acceptances: a unit test
# keeps the two equal), then the gateway's own.
REASON_TYPES: dict[str, str] = {
    **dict.fromkeys(("slot_too_old", "rate_limited", "bad_gateway", "unavailable",
                     "gateway_timeout", "connect_timeout", "timeout", "connection_refused",
                     "connection_reset", "dns_failure", "connection_error", "transport_error"),
                    "retry_swift"),
    **dict.fromkeys(("user_not_found", "deliver_failed", "server_error", "unexpected_status"),
                    "fallback_legacy"),
    **dict.fromkeys(("bad_signature", "delisted_market", "bad_request", "not_found",
                     "unauthorized", "http_4xx", "invalid_order", "insufficient_collateral",
                     "size_too_small", "not_step_multiple", "invalid_auction",
                     "invalid_market_type"), "permanent"),
}
ACCEPTED_REASONS = frozenset({"published", "published_unparsed"})
# Published but it could not trade (the FillTracker's verdict), or its fate is unknown.
EXPIRED_REASONS = ("not_placed", "not_filled")
UNKNOWN_REASONS = ("fill_unconfirmed", "internal_error")
# Never sent by the gateway (its health flag, its rate budget): a fallback, not an error.
NOT_SENT_REASONS = ("swift_unhealthy", "rate_budget")
# Refusals about the user's own account or market, not about Swift or the order we built.
ACCOUNT_REASONS = frozenset({"insufficient_collateral", "size_too_small", "not_step_multiple",
                             "delisted_market", "user_not_found"})
INTERNAL_ERROR = "internal_error"
FAILURE_REASONS = tuple(sorted((set(REASON_TYPES) - ACCOUNT_REASONS) | {INTERNAL_ERROR}))
FALLBACK_REASONS = tuple(sorted(
    {r for r, kind in REASON_TYPES.items() if kind != "permanent"}
    | set(EXPIRED_REASONS) | set(NOT_SENT_REASONS)))
ERROR_TYPES = (tuple((kind, r) for r, kind in REASON_TYPES.items())  # (type, reason) pairs
               + tuple(("expired", r) for r in EXPIRED_REASONS)
               + tuple(("unknown", r) for r in UNKNOWN_REASONS))
AUDIT_EVENTS = ("submitted", "accepted", "placed", "filled", "failed", "expired", "unknown")
LEGACY_OUTCOMES = ("filled", "partial", "not_filled", "failed", "unknown")
TRADE_METHODS = ("swift", "legacy")
TRADE_STATUSES = ("completed", "partial", "failed", "unknown", "refused")
SIGNAL_OUTCOMES = {
    "webhook": ("accepted", "duplicate", "forbidden_source", "unknown_bot", "unauthorized",
                "rate_limited", "malformed", "journaled", "unavailable"),  # database outages
    "manual": ("accepted", "duplicate"),
}
RPC_ENDPOINTS = ("primary", "backup")
_NOT_FAILURES = (ACCOUNT_REASONS | ACCEPTED_REASONS | set(EXPIRED_REASONS)
                 | set(NOT_SENT_REASONS) | {"fill_unconfirmed"})


class MarketMeans:
    """A per-market mean kept by the process (so it outlives actor restarts), shown in a gauge."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def observe(self, market: str, value: float) -> None:
        """Add one value of a market and set the market's gauge to its mean."""
        self._sums[market] = self._sums.get(market, 0.0) + value
        self._counts[market] = self._counts.get(market, 0) + 1
        self._gauge.labels(market=market).set(self._sums[market] / self._counts[market])


PRICE_IMPROVEMENT_MEANS = MarketMeans(SWIFT_AVG_PRICE_IMPROVEMENT_BY_MARKET)


def is_swift_failure(reason: str) -> bool:
    """True when a Swift refusal (or a gateway error) with this reason is Swift failing us:
    not an account refusal, not an expiry, not an order the gateway never sent (a reason the
    taxonomy adds later counts as a failure until it is placed here)."""
    return reason not in _NOT_FAILURES


def prime_market_series(markets: Iterable[str]) -> None:
    """Create every per-market counter series of these markets at 0 (idempotent)."""
    for market in markets:
        for counter in (SWIFT_ORDERS, SWIFT_ORDERS_SUCCESS, SWIFT_ORDERS_FALLBACK,
                        SWIFT_ORDERS_BY_MARKET):
            counter.labels(market=market)
        for outcome in LEGACY_OUTCOMES:
            LEGACY_ORDERS.labels(market=market, outcome=outcome)


def _prime_fixed_series() -> None:
    for reason in FAILURE_REASONS:
        SWIFT_ORDERS_FAILED.labels(reason=reason)
    for reason in FALLBACK_REASONS:
        SWIFT_FALLBACK_REASONS.labels(reason=reason)
    for kind, reason in ERROR_TYPES:
        SWIFT_ERRORS_BY_TYPE.labels(type=kind, reason=reason)
    for event in AUDIT_EVENTS:
        SWIFT_AUDIT_LOG_FAILURES.labels(event=event)
    for method in TRADE_METHODS:
        for status in TRADE_STATUSES:
            TRADES.labels(method=method, status=status)
    for source, outcomes in SIGNAL_OUTCOMES.items():
        for outcome in outcomes:
            SIGNALS.labels(source=source, outcome=outcome)
    for endpoint in RPC_ENDPOINTS:
        RPC_RATE_LIMITED.labels(endpoint=endpoint)


_prime_fixed_series()

# --- Security V3: signing keys and execution grants -------------------------------------------
SIGNING_REFUSALS = Counter("signing_refusals", "Signatures refused before the agent key was"
                           " opened or used (no/expired/revoked/broken grant, legacy path off),"
                           " by fixed reason and origin", ["reason", "origin"])
# Both read the whole database (custody.signing_keys.watch_grants), in the processes that hold
# bots; the others keep their start values (0, +Inf), which a max and a min ignore.
GRANTS_LAPSED_WITH_POSITION = Gauge("v3_grants_lapsed_with_position",
                                    "Bots of V3 wallets holding a position (by their fills) whose"
                                    " execution grant is missing, revoked or expired: nothing can"
                                    " close it until the owner authorizes again",
                                    multiprocess_mode="livemax")
GRANT_MIN_SECONDS_LEFT_WITH_POSITION = Gauge(
    "v3_grant_min_seconds_left_with_position",
    "Shortest time left (s) of the execution grants of V3 bots holding a position"
    " (+Inf when there is none)", multiprocess_mode="livemin")
SIGNING_REFUSAL_REASONS = ("auth_disabled", "auth_expired", "grant_invalid",
                           "legacy_key_path_off", "no_agent_key", "agent_key_mismatch",
                           "grant_unavailable")
SIGNING_ORIGINS = ("webhook", "manual", "subscriber", "retry", "flatten", "profit_share",
                   "cli")


def _prime_signing_series() -> None:
    for reason in SIGNING_REFUSAL_REASONS:
        for origin in SIGNING_ORIGINS:
            SIGNING_REFUSALS.labels(reason=reason, origin=origin)
    GRANT_MIN_SECONDS_LEFT_WITH_POSITION.set(float("inf"))


_prime_signing_series()
