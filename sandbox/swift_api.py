"""HTTP surface of the simulated Swift service: /orders, /confirmation/*, /health.

Wire formats follow drift-labs/swift: JSON ``{"message", "error"?}`` from /orders, plain text
from hash-status and health. Fault knobs (status overrides, timeouts, 412 health) are applied
here, in front of the order logic, the way an edge or an outage would sit in front of it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gevent

from sandbox import swift_orders
from sandbox.exchange import MAX_SWIFT_POSTS, Exchange
from sandbox.wsgi import Request, Response, json_response, reply, text_response

_EDGE_TEXT = {
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


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
    if resp.content_type == "application/json":
        try:
            payload = json.loads(resp.body)
            message, error = payload.get("message"), payload.get("error")
        except (ValueError, AttributeError):
            message = resp.body[:200].decode("utf-8", "replace")
    else:
        message = resp.body[:200].decode("utf-8", "replace")
    record.update(status=resp.status, message=message, error=error, answered_at=time.time())


def post_orders(ex: Exchange, req: Request) -> Response:
    """POST /orders."""
    faults = ex.faults
    override = faults.consume_swift_status()
    if override is not None:
        ex.stats.incr("swift_fault_status")
        if override == 500:
            return json_response(500, {"message": swift_orders.MSG_DELIVERY_FAILED,
                                       "error": "redis publish error: sandbox fault"})
        resp = text_response(override, _EDGE_TEXT[override])
        if override == 429:
            resp.headers.append(("Retry-After", "1"))
        return resp
    if faults.swift_timeout:
        ex.stats.incr("swift_fault_timeout")
        process = faults.swift_timeout_process
        gevent.sleep(faults.hang_seconds())
        if not process:
            return text_response(504, _EDGE_TEXT[504])
    content_type = req.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return text_response(415, "Expected request with `Content-Type: application/json`")
    try:
        body = req.json()
    except ValueError as exc:
        return text_response(400, f"Failed to parse the request body as JSON: {exc}")
    status, payload = swift_orders.process_order(ex, body)
    return reply(status, payload)


def get_hash_status(ex: Exchange, req: Request) -> Response:
    """GET /confirmation/hash-status?hash=... (the real server url-decodes the value again)."""
    if ex.faults.hash_status_500:
        return text_response(500, "error finding")
    from urllib.parse import unquote

    raw = req.query_one("hash")
    status, payload = swift_orders.hash_status(ex, None if raw is None else unquote(raw))
    return reply(status, payload)


def get_health(ex: Exchange, req: Request) -> Response:
    """GET /health: 200 "ok" or 412 with the server's flag list."""
    if ex.faults.health_412:
        return text_response(
            412,
            "slot_sub_healthy=false | ws_sub_healthy=true \n"
            "            | user_account_fetcher_healthy=true |\n"
            "            redis_healthy=true|rpc_healthy=true",
        )
    return text_response(200, "ok")


def get_confirmation_health(ex: Exchange, req: Request) -> Response:
    """GET /confirmation/health: 200 "ok" or 412 "redis_healthy=false"."""
    if ex.faults.health_412:
        return text_response(412, "redis_healthy=false")
    return text_response(200, "ok")
