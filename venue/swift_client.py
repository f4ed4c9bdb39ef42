"""Synchronous Swift HTTP client: submit a signed order, ask whether it was placed, check health.

http.client over pooled keep-alive connections (venue.http_session); under gevent's monkey
patching each call only blocks its own greenlet. Every call has a timeout: they bound the
connect and each socket read, not the whole exchange; a caller that needs a hard wall-clock
deadline wraps the call in ``gevent.Timeout``. No method raises for HTTP or transport
failures: they come back classified (see :mod:`venue.swift_errors`), and exception texts,
which contain URLs, are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from venue.http_session import HttpEndpoint, HttpResponse
from venue.redact import redact_url
from venue.swift_errors import SwiftOutcome, classify_exception, classify_response

TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
DEFAULT_ORDER_TIMEOUT_MS = 3000
DEFAULT_QUERY_TIMEOUT_MS = 2000
_DETAIL_MAX = 200


@dataclass(frozen=True)
class SubmitResult:
    """Outcome of ``POST /orders`` and how long it took (ms, monotonic clock)."""

    outcome: SwiftOutcome
    latency_ms: float


class PlacementStatus(StrEnum):
    """What ``/confirmation/hash-status`` said about an order."""

    PLACED = "placed"
    NOT_FOUND = "not_found"
    ERROR = "error"


@dataclass(frozen=True)
class HashStatusResult:
    """Placement status; ``order_id`` is the on-chain order id once placed."""

    status: PlacementStatus
    order_id: int | None = None
    http_status: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class HealthResult:
    """Swift health: both the order path and the confirmation path must answer ``ok``."""

    healthy: bool
    orders_healthy: bool
    confirmation_healthy: bool
    detail: str


def signature_digest(signature: bytes) -> str:
    """base64(sha256(signature)), the hash-status key (driftpy ``digest_signature``)."""
    return base64.b64encode(hashlib.sha256(signature).digest()).decode("ascii")


class SwiftClient:
    """HTTP client for one Swift base URL with pooled connections and per-call timeouts."""

    def __init__(
        self,
        base_url: str,
        *,
        order_timeout_ms: int = DEFAULT_ORDER_TIMEOUT_MS,
        query_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS,
        pool_size: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if order_timeout_ms <= 0 or query_timeout_ms <= 0:
            raise ValueError("timeouts must be positive")
        self._base = base_url.rstrip("/")
        self._order_timeout = order_timeout_ms / 1000.0
        self._query_timeout = query_timeout_ms / 1000.0
        self._clock = clock
        self._http = HttpEndpoint(self._base, pool_size)

    def __repr__(self) -> str:
        return f"SwiftClient(base_url={redact_url(self._base)!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def submit(self, body: Mapping[str, object]) -> SubmitResult:
        """POST the signed order body to ``/orders``; never raises for HTTP/transport errors."""
        started = self._clock()
        try:
            response = self._http.request(
                "POST", "/orders", json.dumps(dict(body)).encode(),
                {"Content-Type": "application/json"},
                connect_timeout_s=min(self._order_timeout, 2.0),
                read_timeout_s=self._order_timeout)
            outcome = classify_response(response.status, response.body)
        except TRANSPORT_ERRORS as exc:
            outcome = classify_exception(exc)
        return SubmitResult(outcome, (self._clock() - started) * 1000.0)

    def hash_status(self, signature: bytes) -> HashStatusResult:
        """Ask whether the order signed with ``signature`` has been placed on chain."""
        return self.hash_status_by_key(signature_digest(signature))

    def hash_status_by_key(self, digest: str) -> HashStatusResult:
        """The same, from a recorded ``signature_digest`` (reconciliation after a restart)."""
        key = quote(digest, safe="")
        try:
            response = self._get(f"/confirmation/hash-status?hash={key}")
        except TRANSPORT_ERRORS as exc:
            return HashStatusResult(PlacementStatus.ERROR, reason=classify_exception(exc).reason)
        code = response.status
        if code == 404:
            return HashStatusResult(PlacementStatus.NOT_FOUND, http_status=code)
        if code == 200:
            text = response.body.decode("utf-8", "replace").strip()
            try:
                order_id = int(text)
            except ValueError:
                return HashStatusResult(PlacementStatus.ERROR, http_status=code,
                                        reason="unparsed_order_id")
            if order_id <= 0 or order_id >= 2**32:
                return HashStatusResult(PlacementStatus.ERROR, http_status=code,
                                        reason="unparsed_order_id")
            return HashStatusResult(PlacementStatus.PLACED, order_id=order_id, http_status=code)
        return HashStatusResult(PlacementStatus.ERROR, http_status=code, reason=f"http_{code}")

    def _get(self, path: str) -> HttpResponse:
        return self._http.request("GET", path, connect_timeout_s=self._query_timeout,
                                  read_timeout_s=self._query_timeout)

    def _probe(self, path: str) -> tuple[bool, str]:
        try:
            response = self._get(path)
        except TRANSPORT_ERRORS as exc:
            return False, f"{path}: {classify_exception(exc).reason}"
        text = " ".join(response.body.decode("utf-8", "replace").split())[:_DETAIL_MAX]
        ok = response.status == 200 and text.lower() == "ok"
        return ok, f"{path}: {response.status} {text}"

    def health(self) -> HealthResult:
        """GET ``/health`` and ``/confirmation/health``; healthy only if both say ``ok``."""
        orders_ok, orders_detail = self._probe("/health")
        confirm_ok, confirm_detail = self._probe("/confirmation/health")
        return HealthResult(
            healthy=orders_ok and confirm_ok,
            orders_healthy=orders_ok,
            confirmation_healthy=confirm_ok,
            detail=f"{orders_detail}; {confirm_detail}",
        )
