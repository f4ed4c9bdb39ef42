"""The trading metrics, under the seed plan's names, defined once for every actor that counts.

Counters are exposed with Prometheus' `_total` suffix (`swift_orders_success` is scraped as
`swift_orders_success_total`). Labels are bounded: markets come from the venue's market table,
reasons from the fixed error taxonomy, never from free text.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MS_BUCKETS = (25, 50, 100, 250, 500, 1000, 2000, 3000, 5000, 10000, 30000)
BPS_BUCKETS = (-50, -20, -10, -5, -2, 0, 2, 5, 10, 20, 50)

# --- Swift API -----------------------------------------------------------------------------
SWIFT_ORDERS = Counter("swift_orders", "Swift orders submitted", ["market"])
SWIFT_ORDERS_SUCCESS = Counter("swift_orders_success", "Swift orders filled", ["market"])
SWIFT_ORDERS_FAILED = Counter("swift_orders_failed", "Swift orders that failed",
                              ["market", "reason"])
SWIFT_ORDERS_FALLBACK = Counter("swift_orders_fallback", "Orders that fell back to legacy",
                                ["market", "reason"])
SWIFT_API_LATENCY = Histogram("swift_api_latency_ms", "Swift POST /orders round trip (ms)",
                              buckets=MS_BUCKETS)
SWIFT_AUCTION_DURATION = Histogram("swift_auction_duration_ms",
                                   "Time from Swift submission to fill (ms)", buckets=MS_BUCKETS)
SWIFT_PRICE_IMPROVEMENT = Histogram("swift_price_improvement_bps",
                                    "Fill price against the oracle, in the trader's favour (bps)",
                                    buckets=BPS_BUCKETS)
# --- per market ----------------------------------------------------------------------------
SWIFT_ORDERS_BY_MARKET = Counter("swift_orders_by_market", "Swift orders per market",
                                 ["market"])
SWIFT_SUCCESS_RATE_BY_MARKET = Gauge("swift_success_rate_by_market",
                                     "Filled / submitted Swift orders per market", ["market"])
SWIFT_AVG_FILL_TIME_BY_MARKET = Gauge("swift_avg_fill_time_by_market",
                                      "Mean Swift submission-to-fill time per market (ms)",
                                      ["market"])
# --- errors --------------------------------------------------------------------------------
SWIFT_ERRORS_BY_TYPE = Counter("swift_errors_by_type", "Swift errors by taxonomy class and reason",
                               ["type", "reason"])
SWIFT_RETRIES = Counter("swift_retries", "Retry attempts of trades")
SWIFT_FALLBACK_REASONS = Counter("swift_fallback_reasons", "Why orders went legacy", ["reason"])
SWIFT_HEALTHY = Gauge("swift_healthy", "1 while the Swift gateway considers Swift healthy")
# --- legacy and the runtime ----------------------------------------------------------------
LEGACY_ORDERS = Counter("legacy_orders", "On-chain placeAndTakePerpOrder transactions",
                        ["market", "outcome"])
RPC_ACTIVE_ENDPOINT = Gauge("rpc_active_endpoint", "1 for the RPC endpoint in use",
                            ["endpoint"])
RPC_RATE_LIMITED = Counter("rpc_rate_limited", "RPC answers HTTP 429 (rate limited), by endpoint",
                           ["endpoint"])
RETRY_QUEUE_DEPTH = Gauge("retry_queue_depth", "Retry jobs pending or running", ["priority"])
PROFIT_SHARE_IOUS_PENDING = Gauge("profit_share_ious_pending", "Unpaid profit-share IOUs")
WEBHOOK_LATENCY = Histogram("webhook_latency_seconds", "Webhook request to acknowledgement (s)",
                            ["outcome"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3))
SIGNALS = Counter("signals", "Signals received", ["source", "outcome"])
TRADES = Counter("trades", "Trades recorded", ["method", "status"])
