"""HTTP surface of the simulated Swift service: /orders, /confirmation/*, /health.

Wire formats follow drift-labs/swift: JSON ``{"message", "error"?}`` from /orders, plain text
from hash-status and health. Fault knobs (status overrides, timeouts, 412 health) are applied
here, in front of the order logic, the way an edge or an outage would sit in front of it.
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import gevent

from httpapi.wsgi import Request, Response
from sandbox import swift_orders
from sandbox.exchange import MAX_SWIFT_POSTS, Exchange


def post_arrived(ex: Exchange, req: Request) -> dict[str, Any]:
    """Log a POST /orders as it arrives, before any injected latency (GET /sandbox/swift-posts):
    arrival wall time, slot, taker authority; the answer is filled in by :func:`post_answered`
    (``status`` is null while the request is in flight)."""
    authority = None
    try:
        body = json.loads(req.body.decode("utf-8"))
        if isinstance(body, dict):
            raw = body.get("taker_authority") or body.get("taker_pubkey")
            authority = str(raw) if raw else None
    except ValueError:
        pass
    record: dict[str, Any] = {"at": time.time(), "slot": ex.slot, "authority": authority,
                              "status": None, "message": None, "error": None,
                              "answered_at": None}
    with ex.lock:
        ex.swift_posts.append(record)
        if len(ex.swift_posts) > MAX_SWIFT_POSTS:
            del ex.swift_posts[: MAX_SWIFT_POSTS // 2]
    return record


def post_answered(record: dict[str, Any], resp: Response) -> None:
    """Complete a :func:`post_arrived` record with the answer (status, message, error)."""
    message: Any = None
    error: Any = None
    if isinstance(resp.body, dict):
        message, error = resp.body.get("message"), resp.body.get("error")
    else:
        message = resp.payload()[:200].decode("utf-8", "replace")
    record.update(status=resp.status, message=message, error=error, answered_at=time.time())


def post_orders(ex: Exchange, req: Request) -> Response:
    """POST /orders."""
    faults = ex.faults
    override = faults.consume_swift_status()
    if override is not None:
        ex.stats.incr("swift_fault_status")
        if override == 500:
            return Response(500, {"message": swift_orders.MSG_DELIVERY_FAILED,
                                  "error": "redis publish error: sandbox fault"})
        retry_after = (("Retry-After", "1"),) if override == 429 else ()
        return Response.text(override, HTTPStatus(override).phrase, retry_after)
    if faults.swift_timeout:
        ex.stats.incr("swift_fault_timeout")
        process = faults.swift_timeout_process
        gevent.sleep(faults.hang_seconds())
        if not process:
            return Response.text(504, HTTPStatus(504).phrase)
    content_type = req.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return Response.text(415, "Expected request with `Content-Type: application/json`")
    try:
        body = req.json()
    except ValueError as exc:
        return Response.text(400, f"Failed to parse the request body as JSON: {exc}")
    status, payload = swift_orders.process_order(ex, body)
    return _reply(status, payload)


def get_hash_status(ex: Exchange, req: Request) -> Response:
    """GET /confirmation/hash-status?hash=... (the real server url-decodes the value again)."""
    if ex.faults.hash_status_500:
        return Response.text(500, "error finding")
    raw = req.query.get("hash")
    status, payload = swift_orders.hash_status(ex, None if raw is None else unquote(raw))
    return _reply(status, payload)


def get_health(ex: Exchange, req: Request) -> Response:
    """GET /health: 200 "ok" or 412 with the server's flag list."""
    if ex.faults.health_412:
        return Response.text(
            412,
            "slot_sub_healthy=false | ws_sub_healthy=true \n"
            "            | user_account_fetcher_healthy=true |\n"
            "            redis_healthy=true|rpc_healthy=true",
        )
    return Response.text(200, "ok")


def get_confirmation_health(ex: Exchange, req: Request) -> Response:
    """GET /confirmation/health: 200 "ok" or 412 "redis_healthy=false"."""
    if ex.faults.health_412:
        return Response.text(412, "redis_healthy=false")
    return Response.text(200, "ok")


def _reply(status: int, payload: Any) -> Response:
    """The Swift server's answer: text for a string, JSON for anything else."""
    return Response.text(status, payload) if isinstance(payload, str) else Response(status, payload)
