"""SwiftClient against real loopback HTTP servers: wire body, outcomes, hash-status, health."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs

import pytest
from solders.keypair import Keypair

from tests.venue.http_fixtures import ResetServer, ScriptedServer, refused_url
from venue.auction import AuctionConfig
from venue.swift_client import PlacementStatus, SwiftClient
from venue.swift_errors import OutcomeKind
from venue.swift_message import sign_order
from venue.swift_order import LONG, SignedMsgOrder, market_order, new_uuid


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.stop()


def _signed():
    spec = market_order(direction=LONG, base_asset_amount=10**9, market_index=0,
                        oracle_price=150_000_000, auction=AuctionConfig())
    return sign_order(Keypair(), SignedMsgOrder(params=spec, slot=1000, uuid=new_uuid()))


def test_submit_posts_the_exact_body_and_reads_success(server) -> None:
    ok = json.dumps({"message": "Order processed"})
    server.routes[("POST", "/orders")] = lambda _e: (200, ok)
    signed = _signed()
    client = SwiftClient(server.url)
    result = client.submit(signed.body)
    assert result.outcome.kind is OutcomeKind.ACCEPTED
    assert result.latency_ms >= 0
    rec = server.requests[-1]
    assert rec.headers["content-type"] == "application/json"
    assert json.loads(rec.body) == signed.body


@pytest.mark.parametrize(("status", "body", "kind", "reason"), [
    (400, {"message": "Order slot too old", "error": "Order slot too old"},
     OutcomeKind.RETRY_SWIFT, "slot_too_old"),
    (400, {"message": "Invalid order",
           "error": "invalid order. error code: Drift(InsufficientCollateral)"},
     OutcomeKind.PERMANENT, "insufficient_collateral"),
    (404, {"message": "Invalid order", "error": "unable to fetch user"},
     OutcomeKind.FALLBACK_LEGACY, "user_not_found"),
    (500, {"message": "Failed to deliver message"}, OutcomeKind.FALLBACK_LEGACY,
     "deliver_failed"),
    (429, "slow down", OutcomeKind.RETRY_SWIFT, "rate_limited"),
    (503, "down", OutcomeKind.RETRY_SWIFT, "unavailable"),
])
def test_submit_classifies_error_responses(server, status, body, kind, reason) -> None:
    payload = body if isinstance(body, str) else json.dumps(body)
    server.routes[("POST", "/orders")] = lambda _e: (status, payload)
    outcome = SwiftClient(server.url).submit(_signed().body).outcome
    assert (outcome.kind, outcome.reason, outcome.http_status) == (kind, reason, status)


def test_submit_times_out_and_marks_maybe_published(server) -> None:
    server.routes[("POST", "/orders")] = server.hang
    client = SwiftClient(server.url, order_timeout_ms=150)
    result = client.submit(_signed().body)
    assert result.outcome.kind is OutcomeKind.RETRY_SWIFT
    assert result.outcome.reason == "timeout"
    assert result.outcome.maybe_published
    assert 100 <= result.latency_ms < 5000


def test_submit_connection_refused() -> None:
    outcome = SwiftClient(refused_url(), order_timeout_ms=500).submit(_signed().body).outcome
    assert (outcome.kind, outcome.reason, outcome.maybe_published) == (
        OutcomeKind.RETRY_SWIFT, "connection_refused", False)


def test_submit_connection_reset() -> None:
    srv = ResetServer()
    try:
        outcome = SwiftClient(srv.url, order_timeout_ms=1000).submit(_signed().body).outcome
    finally:
        srv.stop()
    assert outcome.kind is OutcomeKind.RETRY_SWIFT
    assert outcome.reason in ("connection_reset", "connection_error")
    assert outcome.maybe_published


def test_hash_status_queries_url_encoded_digest(server) -> None:
    signed = _signed()
    expected = base64.b64encode(hashlib.sha256(signed.signature).digest()).decode()
    server.routes[("GET", "/confirmation/hash-status")] = lambda _e: (200, "4242")
    result = SwiftClient(server.url).hash_status(signed.signature)
    assert (result.status, result.order_id) == (PlacementStatus.PLACED, 4242)
    rec = server.requests[-1]
    assert "+" not in rec.query and "/" not in rec.query  # url-encoded, not raw base64
    assert parse_qs(rec.query)["hash"] == [expected]


@pytest.mark.parametrize(("status", "body", "expected", "order_id"), [
    (404, "not found", PlacementStatus.NOT_FOUND, None),
    (500, "oops", PlacementStatus.ERROR, None),
    (200, "not-a-number", PlacementStatus.ERROR, None),
])
def test_hash_status_other_answers(server, status, body, expected, order_id) -> None:
    server.routes[("GET", "/confirmation/hash-status")] = lambda _e: (status, body)
    result = SwiftClient(server.url).hash_status(b"\x01" * 64)
    assert (result.status, result.order_id) == (expected, order_id)


def test_hash_status_transport_error_is_error() -> None:
    result = SwiftClient(refused_url(), query_timeout_ms=500).hash_status(b"\x01" * 64)
    assert result.status is PlacementStatus.ERROR and result.reason == "connection_refused"


def test_health_requires_both_paths(server) -> None:
    server.routes[("GET", "/health")] = lambda _e: (200, "ok")
    server.routes[("GET", "/confirmation/health")] = lambda _e: (200, "ok")
    client = SwiftClient(server.url)
    assert client.health().healthy
    server.routes[("GET", "/health")] = lambda _e: (
        412, "slot_sub_healthy=false | ws_sub_healthy=true")
    health = client.health()
    assert not health.healthy and not health.orders_healthy and health.confirmation_healthy
    assert "slot_sub_healthy=false" in health.detail


def test_health_hang_times_out(server) -> None:
    server.routes[("GET", "/health")] = server.hang
    server.routes[("GET", "/confirmation/health")] = lambda _e: (200, "ok")
    health = SwiftClient(server.url, query_timeout_ms=150).health()
    assert not health.healthy and "timeout" in health.detail


def test_repr_hides_query_secrets() -> None:
    client = SwiftClient("https://swift.example/?token=supersecretvalue")
    assert "supersecretvalue" not in repr(client)
