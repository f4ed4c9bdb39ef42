"""Table-driven checks of the Swift response taxonomy: every documented response + transport."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from venue.http_session import ConnectFailed
from venue.swift_errors import REASONS, OutcomeKind, classify_exception, classify_response

A, R, F, P = (OutcomeKind.ACCEPTED, OutcomeKind.RETRY_SWIFT, OutcomeKind.FALLBACK_LEGACY,
              OutcomeKind.PERMANENT)


def j(message: str, error: str | None = None) -> str:
    body: dict[str, str] = {"message": message}
    if error is not None:
        body["error"] = error
    return json.dumps(body)


RESPONSES = [
    # status, body, kind, reason, maybe_published
    (200, j("Order processed"), A, "published", False),
    (200, "ok", A, "published_unparsed", False),
    (400, j("Error verifying signed message", "Invalid signature"), P, "bad_signature", False),
    (400, j("Order slot too old", "Order slot too old"), R, "slot_too_old", False),
    (400, "order slot too old", R, "slot_too_old", False),  # older server: plain text
    (400, j("Invalid order", "InvalidOrderSizeTooSmall"), P, "size_too_small", False),
    (400, j("Invalid order", "InvalidOrderAuction"), P, "invalid_auction", False),
    (400, j("Invalid order", "InvalidOrderMarketType"), P, "invalid_market_type", False),
    (400, j("Invalid order", "invalid order. error code: Drift(InsufficientCollateral)"), P,
     "insufficient_collateral", False),
    (400, j("Invalid order", "invalid order. error code: Drift(SomethingNew)"), P,
     "invalid_order", False),
    (400, j("Invalid order", "InvalidOrderNotStepSizeMultiple"), P, "not_step_multiple", False),
    (400, j("Delisted market", "Delisted market"), P, "delisted_market", False),
    (400, j("Something unexpected"), P, "bad_request", False),
    (400, "<html>bad request</html>", P, "bad_request", False),
    (404, j("Invalid order", "unable to fetch user"), F, "user_not_found", False),
    (404, "unable to fetch user", F, "user_not_found", False),
    (404, "not found", P, "not_found", False),
    (500, j("Failed to deliver message", "kafka publish error"), F, "deliver_failed", False),
    (500, "<html>internal</html>", F, "server_error", True),
    (401, "", P, "unauthorized", False),
    (403, "forbidden", P, "unauthorized", False),
    (413, "too large", P, "http_4xx", False),
    (429, "Too Many Requests", R, "rate_limited", False),
    (502, "<html>bad gateway</html>", R, "bad_gateway", True),
    (503, "Service Unavailable", R, "unavailable", False),
    (504, "<html>gateway timeout</html>", R, "gateway_timeout", True),
    (507, "", F, "server_error", True),
]


@pytest.mark.parametrize(("status", "body", "kind", "reason", "maybe"), RESPONSES)
def test_documented_responses(status, body, kind, reason, maybe) -> None:
    for payload in (body, body.encode()):
        outcome = classify_response(status, payload)
        assert (outcome.kind, outcome.reason, outcome.maybe_published) == (kind, reason, maybe)
        assert outcome.http_status == status
        assert outcome.reason in REASONS
        assert len(outcome.detail) <= 160


def connect_failed(cause: BaseException) -> ConnectFailed:
    """What venue.http_session raises when it cannot connect (nothing was sent)."""
    failed = ConnectFailed(type(cause).__name__)
    failed.__cause__ = cause
    return failed


TRANSPORT = [
    (connect_failed(TimeoutError("timed out")), "connect_timeout", False),
    (connect_failed(ConnectionRefusedError(111, "Connection refused")), "connection_refused",
     False),
    (connect_failed(socket.gaierror(-2, "Name or service not known")), "dns_failure", False),
    (connect_failed(OSError(101, "Network is unreachable")), "connection_error", False),
    (TimeoutError("timed out"), "timeout", True),
    (ConnectionResetError(104, "Connection reset by peer"), "connection_reset", True),
    (http.client.RemoteDisconnected("closed"), "connection_reset", True),
    (BrokenPipeError(32, "Broken pipe"), "connection_reset", True),
    (http.client.IncompleteRead(b""), "transport_error", True),
    (ValueError("weird"), "transport_error", True),
]


@pytest.mark.parametrize(("exc", "reason", "maybe"), TRANSPORT)
def test_transport_failures_retry_swift(exc, reason, maybe) -> None:
    outcome = classify_exception(exc)
    assert outcome.kind is OutcomeKind.RETRY_SWIFT
    assert (outcome.reason, outcome.maybe_published) == (reason, maybe)
    assert outcome.reason in REASONS
    assert outcome.detail == ""  # exception text (may hold a URL with a key) is never kept


def test_detail_is_truncated_and_printable() -> None:
    outcome = classify_response(400, j("Invalid order", "x\n\x00" * 500))
    assert len(outcome.detail) == 160
    assert all(32 <= ord(c) < 127 for c in outcome.detail)
