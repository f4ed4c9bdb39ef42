"""Synchronous Swift HTTP client: submit a signed order, ask whether it was placed, check health.

Plain ``requests`` over one pooled ``Session``; under gevent's monkey patching each call only
blocks its own greenlet. Every call has a timeout. ``requests`` timeouts bound the connect and
each socket read, not the whole exchange; a caller that needs a hard wall-clock deadline wraps
the call in ``gevent.Timeout``. No method raises for HTTP or transport failures: they come back
classified (see :mod:`venue.swift_errors`), and exception texts, which contain URLs, are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from urllib.parse import quote

import requests

from venue.http_session import pooled_session
from venue.redact import install_urllib3_redaction, redact_url
from venue.swift_errors import SwiftOutcome, classify_exception, classify_response

install_urllib3_redaction()
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
    """HTTP client for one Swift base URL with a pooled session and per-call timeouts."""

    def __init__(
        self,
        base_url: str,
        *,
        order_timeout_ms: int = DEFAULT_ORDER_TIMEOUT_MS,
        query_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS,
        pool_size: int = 16,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if order_timeout_ms <= 0 or query_timeout_ms <= 0:
            raise ValueError("timeouts must be positive")
        self._base = base_url.rstrip("/")
        self._order_timeout = order_timeout_ms / 1000.0
        self._query_timeout = query_timeout_ms / 1000.0
        self._clock = clock
        self._session = session or pooled_session(self._base, pool_size, pool_connections=2)

    def __repr__(self) -> str:
        return f"SwiftClient(base_url={redact_url(self._base)!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def submit(self, body: Mapping[str, object]) -> SubmitResult:
        """POST the signed order body to ``/orders``; never raises for HTTP/transport errors."""
        started = self._clock()
        try:
            response = self._session.post(
                f"{self._base}/orders",
                json=cast(dict[str, Any], dict(body)),
                headers={"Content-Type": "application/json"},
                timeout=(min(self._order_timeout, 2.0), self._order_timeout),
                allow_redirects=False,
            )
            outcome = classify_response(response.status_code, response.content)
        except (requests.RequestException, OSError) as exc:
            outcome = classify_exception(exc)
        return SubmitResult(outcome, (self._clock() - started) * 1000.0)

    def hash_status(self, signature: bytes) -> HashStatusResult:
        """Ask whether the order signed with ``signature`` has been placed on chain."""
        return self.hash_status_by_key(signature_digest(signature))

    def hash_status_by_key(self, digest: str) -> HashStatusResult:
        """The same, from a recorded ``signature_digest`` (reconciliation after a restart)."""
        key = quote(digest, safe="")
        try:
            response = self._session.get(
                f"{self._base}/confirmation/hash-status?hash={key}",
                timeout=self._query_timeout,
                allow_redirects=False,
            )
        except (requests.RequestException, OSError) as exc:
            return HashStatusResult(PlacementStatus.ERROR, reason=classify_exception(exc).reason)
        code = response.status_code
        if code == 404:
            return HashStatusResult(PlacementStatus.NOT_FOUND, http_status=code)
        if code == 200:
            text = response.text.strip()
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

    def _probe(self, path: str) -> tuple[bool, str]:
        try:
            response = self._session.get(f"{self._base}{path}", timeout=self._query_timeout,
                                         allow_redirects=False)
        except (requests.RequestException, OSError) as exc:
            return False, f"{path}: {classify_exception(exc).reason}"
        text = " ".join(response.text.split())[:_DETAIL_MAX]
        ok = response.status_code == 200 and text.lower() == "ok"
        return ok, f"{path}: {response.status_code} {text}"

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
