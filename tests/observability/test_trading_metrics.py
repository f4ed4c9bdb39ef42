"""What the trading metrics count: the failure rule against the Swift taxonomy, and every series
of a label value known in advance present at 0 before its first event."""

from __future__ import annotations

import socket

import pykka
import pytest
from prometheus_client import REGISTRY

from observability.trading_metrics import (
    ACCEPTED_REASONS,
    AUDIT_EVENTS,
    ERROR_TYPES,
    FAILURE_REASONS,
    FALLBACK_REASONS,
    REASON_TYPES,
    RPC_ENDPOINTS,
    SIGNAL_OUTCOMES,
    TRADE_METHODS,
    TRADE_STATUSES,
    is_swift_failure,
    prime_market_series,
)
from supervision import Backoff, ChildSpec, Status, Supervisor
from tests.supervision.actors_for_tests import Echo
from tests.venue.test_swift_errors import connect_failed
from venue.swift_errors import REASONS, classify_exception, classify_response

# One answer per reason the taxonomy gives, to check the class REASON_TYPES records for it.
ANSWERS = {
    "slot_too_old": (400, '{"message": "Order slot too old"}'),
    "rate_limited": (429, "Too Many Requests"),
    "bad_gateway": (502, "Bad Gateway"),
    "unavailable": (503, "Service Unavailable"),
    "gateway_timeout": (504, "Gateway Timeout"),
    "user_not_found": (404, '{"message": "Invalid order", "error": "unable to fetch user"}'),
    "deliver_failed": (500, '{"message": "Failed to deliver message"}'),
    "server_error": (500, "oops"),
    "unexpected_status": (302, "moved"),
    "bad_signature": (400, '{"message": "Error verifying signed message"}'),
    "delisted_market": (400, '{"message": "Delisted market"}'),
    "bad_request": (400, "nonsense"),
    "not_found": (404, "nothing"),
    "unauthorized": (401, "no"),
    "http_4xx": (418, "teapot"),
    "invalid_order": (400, '{"message": "Invalid order", "error": "Drift(Other)"}'),
    "insufficient_collateral": (400, '{"message": "Invalid order", "error": "invalid order.'
                                     ' error code: Drift(InsufficientCollateral)"}'),
    "size_too_small": (400, '{"message": "Invalid order", "error": "InvalidOrderSizeTooSmall"}'),
    "not_step_multiple": (400, '{"message": "Invalid order",'
                               ' "error": "InvalidOrderNotStepSizeMultiple"}'),
    "invalid_auction": (400, '{"message": "Invalid order", "error": "InvalidOrderAuction"}'),
    "invalid_market_type": (400, '{"message": "Invalid order",'
                                 ' "error": "InvalidOrderMarketType"}'),
}
EXCEPTIONS = {
    "connect_timeout": connect_failed(TimeoutError()),
    "timeout": TimeoutError(),
    "connection_refused": connect_failed(ConnectionRefusedError()),
    "connection_reset": ConnectionResetError(),
    "connection_error": connect_failed(OSError("boom")),
    "dns_failure": connect_failed(socket.gaierror()),
    "transport_error": ValueError(),
}


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_every_taxonomy_reason_has_its_class() -> None:
    assert set(REASON_TYPES) | ACCEPTED_REASONS == REASONS
    assert set(ANSWERS) | set(EXCEPTIONS) == set(REASON_TYPES)
    for reason, (status, body) in ANSWERS.items():
        outcome = classify_response(status, body)
        assert (outcome.reason, outcome.kind.value) == (reason, REASON_TYPES[reason])
    for reason, exc in EXCEPTIONS.items():
        outcome = classify_exception(exc)
        assert (outcome.reason, outcome.kind.value) == (reason, REASON_TYPES[reason])


@pytest.mark.parametrize("reason", ["unavailable", "rate_limited", "timeout", "bad_gateway",
                                    "server_error", "deliver_failed", "connection_refused",
                                    "bad_signature", "invalid_auction", "slot_too_old",
                                    "invalid_order", "internal_error"])
def test_swift_failing_us_is_a_failure(reason: str) -> None:
    assert is_swift_failure(reason) and reason in FAILURE_REASONS


@pytest.mark.parametrize("reason", ["insufficient_collateral", "size_too_small",
                                    "not_step_multiple", "delisted_market", "user_not_found",
                                    "not_filled", "not_placed", "swift_unhealthy", "rate_budget",
                                    "fill_unconfirmed", "published"])
def test_liquidity_account_and_not_sent_outcomes_are_not_failures(reason: str) -> None:
    assert not is_swift_failure(reason) and reason not in FAILURE_REASONS


def test_series_of_known_label_values_exist_at_zero() -> None:
    prime_market_series(["PRIMED-PERP"])
    for name in ("swift_orders_total", "swift_orders_success_total",
                 "swift_orders_fallback_total", "swift_orders_by_market_total"):
        assert sample(name, market="PRIMED-PERP") == 0.0, name
    for outcome in ("filled", "partial", "not_filled", "failed", "unknown"):
        assert sample("legacy_orders_total", market="PRIMED-PERP", outcome=outcome) == 0.0
    # the fixed vocabularies exist from import (other tests may have counted some already)
    for reason in FAILURE_REASONS:
        assert sample("swift_orders_failed_total", reason=reason) is not None, reason
    for reason in FALLBACK_REASONS:
        assert sample("swift_fallback_reasons_total", reason=reason) is not None, reason
    assert ("permanent", "insufficient_collateral") in ERROR_TYPES
    assert ("expired", "not_filled") in ERROR_TYPES
    for kind, reason in ERROR_TYPES:
        assert sample("swift_errors_by_type_total", type=kind, reason=reason) is not None
    for event in AUDIT_EVENTS:
        assert sample("swift_audit_log_failures_total", event=event) is not None
    for method in TRADE_METHODS:
        for status in TRADE_STATUSES:
            assert sample("trades_total", method=method, status=status) is not None
    for source, outcomes in SIGNAL_OUTCOMES.items():
        for outcome in outcomes:
            assert sample("signals_total", source=source, outcome=outcome) is not None
    for endpoint in RPC_ENDPOINTS:
        assert sample("rpc_rate_limited_total", endpoint=endpoint) is not None


def test_an_actor_restarts_series_exists_at_zero_before_its_first_restart() -> None:
    name = "metrics-primed-child"
    assert sample("supervisor_restarts_total", actor=name) is None
    sup = Supervisor.start([ChildSpec(name, Echo)], backoff=Backoff(base_s=0.001, cap_s=0.01))
    try:
        sup.ask(Status(), timeout=10)
        assert sample("supervisor_restarts_total", actor=name) == 0.0
    finally:
        sup.stop(block=True, timeout=10)
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
