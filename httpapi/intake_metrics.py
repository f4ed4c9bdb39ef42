"""Metrics of the HTTP intake's refusals: hostile or unauthenticated requests cost a counter,
never a database row. Labels are fixed reasons; every known reason starts its series at 0, so
a dashboard or an alert sees the series before the first refusal.
"""

from __future__ import annotations

from prometheus_client import Counter

# Why a webhook was refused before its secret was accepted (nothing is written for these).
UNAUTHENTICATED_REASONS = (
    "unknown_bot",                    # no bot with this id (or an id no bot can have)
    "forbidden_source",               # TRADINGVIEW_IP_ALLOWLIST refused the client address
    "webhook_secret_missing",         # no ?secret= nor X-Webhook-Secret
    "webhook_secret_mismatch",        # a secret, but not this bot's
    "webhook_secret_not_configured",  # the bot has no secret hash
    "webhook_secret_hash_malformed",  # the stored hash cannot be read
    "webhook_secret_unknown_key",     # the hash names a server key that is not loaded
)

# Why the router refused a request before any handler ran.
REFUSED_REASONS = (
    "bad_content_length",  # Content-Length not a non-negative integer
    "body_too_large",      # over WEBHOOK_MAX_BODY_BYTES (announced or read)
    "body_unreadable",     # a broken chunked encoding, a connection that went away
    "read_timeout",        # the body did not arrive within WEBHOOK_READ_TIMEOUT_S
    "nul_byte",            # a NUL in the path, the query or a header
    "not_utf8",            # a path that is not UTF-8 once unquoted
    "bad_query",           # a query string that cannot be parsed
)

WEBHOOK_UNAUTHENTICATED = Counter(
    "webhook_unauthenticated", "Webhook requests refused before authentication, by reason",
    ["reason"])
WEBHOOK_RATE_LIMITED = Counter(
    "webhook_rate_limited", "Authenticated alerts refused by the per-bot rate limit (429)")
HTTP_REQUESTS_REFUSED = Counter(
    "http_requests_refused", "Requests the HTTP router refused before routing, by reason",
    ["reason"])

for _reason in UNAUTHENTICATED_REASONS:
    WEBHOOK_UNAUTHENTICATED.labels(reason=_reason)
for _reason in REFUSED_REASONS:
    HTTP_REQUESTS_REFUSED.labels(reason=_reason)
