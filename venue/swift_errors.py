"""Classify every Swift ``POST /orders`` response and transport failure into the error taxonomy.

Each outcome has a ``kind`` (``accepted`` or one of the failure kinds ``retry_swift``,
``fallback_legacy``, ``permanent``), a ``reason`` that is safe as a Prometheus label (a fixed, small
vocabulary: no ids, no URLs, no server text) and ``maybe_published``: True when the server may have
published the order to makers even though we did not see a success (a timeout after the request was
sent, a gateway error, an unreadable body). Before falling back to the legacy path after such an
outcome the caller must ask ``/confirmation/hash-status`` and wait until the message's
``slot + auction_duration`` has passed (never act twice on an unknown outcome). Re-sending the
*same* signed bytes is always safe: the program skips a repeated uuid.

Why each case maps where it does (server: drift-labs/swift ``process_order``):

* 200 ``Order processed`` -> accepted/``published``. Published to makers, not placed, not
  filled; placement is learnt from hash-status, the fill from the User account.
* 400 ``Error verifying signed message`` -> permanent/``bad_signature``. Our encoder or key is
  wrong; the identical bytes will fail again, and sending real money down another path while
  the signing component is suspect is worse than alerting.
* 400 ``Order slot too old`` -> retry_swift/``slot_too_old``. Re-sign with a fresh slot (keep the
  uuid so a late duplicate is still skipped).
* 400 ``Invalid order`` + ``InvalidOrderSizeTooSmall`` -> permanent/``size_too_small``; the program
  enforces the same minimum on the legacy path.
* 400 ``Invalid order`` + ``InvalidOrderAuction`` -> permanent/``invalid_auction``: our auction
  builder produced something the venue rejects; that is a bug to surface, not to route around.
* 400 ``Invalid order`` + ``InvalidOrderMarketType`` -> permanent/``invalid_market_type``.
* 400 ``Invalid order`` + ``Drift(InsufficientCollateral)`` -> permanent/
  ``insufficient_collateral``; the legacy transaction runs the same margin check on chain.
* 400 ``Invalid order`` with another simulation error -> permanent/``invalid_order``.
* 400 ``Delisted market`` -> permanent/``delisted_market``; the program refuses it too.
* 404 ``unable to fetch user`` -> fallback_legacy/``user_not_found``. The server could not load
  the User account from *its* RPC/cache; the order was certainly not published. If the account
  really does not exist, the legacy path's simulateTransaction fails definitively (and cheaply);
  if the server's view merely lags (a freshly funded account), legacy executes the trade. Either
  way there is no double-execution risk, so we choose the path that can still trade.
* 500 ``Failed to deliver message`` -> fallback_legacy/``deliver_failed``: the server could not
  publish to its bus, so makers never saw it; not published.
* Other 5xx from the server -> fallback_legacy/``server_error``, ``maybe_published``.
* 429 -> retry_swift/``rate_limited`` (an edge limiter; the request was refused, not published).
* 502 / 504 -> retry_swift (``bad_gateway`` / ``gateway_timeout``), ``maybe_published`` (the edge
  may have forwarded it); 503 -> retry_swift/``unavailable``.
* Timeout while reading -> retry_swift/``timeout``, ``maybe_published``; connect timeout and
  connection refused -> retry_swift, not published; connection reset -> retry_swift,
  ``maybe_published``. The caller's retry budget then turns repeated retry_swift into a fallback.
* 401/403/other 4xx -> permanent (``unauthorized`` / ``http_4xx``); a 200 whose body is not the
  documented JSON is still accepted (``published_unparsed``) since the server said OK.
* A non-JSON error body is classified by status code alone.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from enum import StrEnum

from venue.http_session import ConnectFailed


class OutcomeKind(StrEnum):
    """What the caller should do next."""

    ACCEPTED = "accepted"
    RETRY_SWIFT = "retry_swift"
    FALLBACK_LEGACY = "fallback_legacy"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SwiftOutcome:
    """A classified Swift response: kind, metric-safe reason, status and short server text."""

    kind: OutcomeKind
    reason: str
    http_status: int | None = None
    maybe_published: bool = False
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """True when the server published the order to makers."""
        return self.kind is OutcomeKind.ACCEPTED


_DETAIL_MAX = 160
_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_DRIFT_CODE = re.compile(r"drift\((\w+)\)", re.IGNORECASE)

# Program error names we label individually; anything else collapses into one label.
_KNOWN_PROGRAM_ERRORS = {
    "insufficientcollateral": "insufficient_collateral",
    "invalidordersizetoosmall": "size_too_small",
    "ordersizetoosmall": "size_too_small",
    "orderamounttoosmall": "size_too_small",
    "invalidorderminordersize": "size_too_small",
    "invalidordernotstepsizemultiple": "not_step_multiple",
    "invalidorderauction": "invalid_auction",
    "invalidordermarkettype": "invalid_market_type",
    "marketdelisted": "delisted_market",
}


def _detail(text: str) -> str:
    return _PRINTABLE.sub(" ", text)[:_DETAIL_MAX]


def _parse(body: bytes | str) -> tuple[str, str, bool]:
    """Return (message, error, parsed_ok) from a response body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
    except ValueError:
        return text.strip(), "", False
    if not isinstance(obj, dict):
        return text.strip(), "", False
    message = obj.get("message")
    error = obj.get("error")
    return (str(message) if message is not None else "",
            str(error) if error is not None else "", True)


def _invalid_order_reason(text: str) -> str:
    lowered = text.lower()
    for key in ("invalidordersizetoosmall", "invalidorderauction", "invalidordermarkettype",
                "invalidordernotstepsizemultiple", "invalidorderminordersize"):
        if key in lowered:
            return _KNOWN_PROGRAM_ERRORS[key]
    match = _DRIFT_CODE.search(text)
    if match:
        return _KNOWN_PROGRAM_ERRORS.get(match.group(1).lower(), "invalid_order")
    return "invalid_order"


def classify_response(status: int, body: bytes | str) -> SwiftOutcome:
    """Map an HTTP status and body from ``POST /orders`` to a SwiftOutcome."""
    message, error, parsed = _parse(body)
    text = f"{message} {error}".strip()
    lowered = text.lower()
    detail = _detail(text)

    def out(kind: OutcomeKind, reason: str, maybe: bool = False) -> SwiftOutcome:
        return SwiftOutcome(kind, reason, status, maybe, detail)

    if 200 <= status < 300:
        if parsed and message == "Order processed":
            return out(OutcomeKind.ACCEPTED, "published")
        return out(OutcomeKind.ACCEPTED, "published_unparsed")
    if status == 400:
        if "error verifying signed message" in lowered:
            return out(OutcomeKind.PERMANENT, "bad_signature")
        if "slot too old" in lowered:
            return out(OutcomeKind.RETRY_SWIFT, "slot_too_old")
        if "delisted market" in lowered:
            return out(OutcomeKind.PERMANENT, "delisted_market")
        if "unable to fetch user" in lowered or "user not found" in lowered:
            return out(OutcomeKind.FALLBACK_LEGACY, "user_not_found")
        if "invalid order" in lowered:
            return out(OutcomeKind.PERMANENT, _invalid_order_reason(text))
        return out(OutcomeKind.PERMANENT, "bad_request")
    if status == 404:
        if "unable to fetch user" in lowered or "user not found" in lowered:
            return out(OutcomeKind.FALLBACK_LEGACY, "user_not_found")
        return out(OutcomeKind.PERMANENT, "not_found")
    if status in (401, 403):
        return out(OutcomeKind.PERMANENT, "unauthorized")
    if status == 429:
        return out(OutcomeKind.RETRY_SWIFT, "rate_limited")
    if status == 502:
        return out(OutcomeKind.RETRY_SWIFT, "bad_gateway", True)
    if status == 503:
        return out(OutcomeKind.RETRY_SWIFT, "unavailable")
    if status == 504:
        return out(OutcomeKind.RETRY_SWIFT, "gateway_timeout", True)
    if status == 500 and "failed to deliver message" in lowered:
        return out(OutcomeKind.FALLBACK_LEGACY, "deliver_failed")
    if 500 <= status < 600:
        return out(OutcomeKind.FALLBACK_LEGACY, "server_error", True)
    if 400 <= status < 500:
        return out(OutcomeKind.PERMANENT, "http_4xx")
    return out(OutcomeKind.FALLBACK_LEGACY, "unexpected_status", True)


def classify_exception(exc: BaseException) -> SwiftOutcome:
    """Map a socket or HTTP exception (venue.http_session) to a SwiftOutcome (the message is
    never echoed). A connection that could not be made sent nothing; any later failure may
    have left the request at the server."""
    kind = OutcomeKind.RETRY_SWIFT
    if isinstance(exc, ConnectFailed):
        cause = exc.__cause__
        if isinstance(cause, TimeoutError):
            return SwiftOutcome(kind, "connect_timeout")
        if isinstance(cause, ConnectionRefusedError):
            return SwiftOutcome(kind, "connection_refused")
        if isinstance(cause, socket.gaierror):
            return SwiftOutcome(kind, "dns_failure")
        return SwiftOutcome(kind, "connection_error")
    if isinstance(exc, TimeoutError):
        return SwiftOutcome(kind, "timeout", maybe_published=True)
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return SwiftOutcome(kind, "connection_reset", maybe_published=True)
    return SwiftOutcome(kind, "transport_error", maybe_published=True)


# Every reason label this module can emit: bounded cardinality for metrics.
REASONS: frozenset[str] = frozenset({
    "published", "published_unparsed", "bad_signature", "slot_too_old", "delisted_market",
    "user_not_found", "bad_request", "not_found", "unauthorized", "rate_limited", "bad_gateway",
    "unavailable", "gateway_timeout", "deliver_failed", "server_error", "http_4xx",
    "unexpected_status", "connect_timeout", "timeout", "connection_refused", "connection_reset",
    "dns_failure", "connection_error", "transport_error", "invalid_order",
    *_KNOWN_PROGRAM_ERRORS.values(),
})
