"""The sandbox HTTP server: one gevent WSGI listener serving Swift, Solana JSON-RPC and /sandbox/.

Paths on one port (``url``):
  Swift      POST /orders, GET /confirmation/hash-status, GET /health, GET /confirmation/health
  RPC        POST /  (primary)   POST /backup  (backup; same chain, failed independently)
  Control    /sandbox/faucet, /sandbox/faults, /sandbox/liquidity, /sandbox/oracle,
             /sandbox/config, /sandbox/step, /sandbox/stats, /sandbox/user, /sandbox/fills,
             /sandbox/swift-posts, /sandbox/rpc-log, /sandbox/state
Primary and backup share one chain, so failover tests see the same state through either URL.
Only loopback hosts are accepted.

Venue timing (see sandbox/README.md): latency faults are a ``gevent.sleep`` in the request's own
greenlet (pywsgi serves each connection on its own greenlet), so N concurrent requests all wait
~latency, not N x latency. ``rpc_rps_limit`` puts a token bucket per RPC path in front of the
JSON-RPC routes and answers HTTP 429 like a provider (sandbox/ratelimit.py). Every
``POST /orders`` is logged with its arrival wall time (GET /sandbox/swift-posts).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from httpapi.wsgi import Request, Response, environ_headers, respond
from sandbox import admin_api, rpc_api, swift_api
from sandbox.exchange import Exchange, ExchangeConfig
from sandbox.markets import MarketSpec

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024

Route = Callable[[Exchange, Request], Response]

SWIFT_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/orders"): swift_api.post_orders,
    ("GET", "/confirmation/hash-status"): swift_api.get_hash_status,
    ("GET", "/health"): swift_api.get_health,
    ("GET", "/confirmation/health"): swift_api.get_confirmation_health,
}
RPC_PATHS = {"/": "primary", "/backup": "backup"}
ADMIN_ROUTES: dict[str, tuple[set[str], Route]] = {
    "/sandbox/faucet": ({"POST"}, admin_api.faucet),
    "/sandbox/faults": ({"GET", "POST", "DELETE"}, admin_api.faults),
    "/sandbox/liquidity": ({"GET", "POST"}, admin_api.liquidity),
    "/sandbox/oracle": ({"GET", "POST"}, admin_api.oracle),
    "/sandbox/step": ({"POST"}, admin_api.step),
    "/sandbox/config": ({"GET", "POST"}, admin_api.config),
    "/sandbox/stats": ({"GET"}, admin_api.stats),
    "/sandbox/user": ({"GET"}, admin_api.user),
    "/sandbox/fills": ({"GET"}, admin_api.fills),
    "/sandbox/swift-posts": ({"GET"}, admin_api.swift_posts),
    "/sandbox/rpc-log": ({"GET"}, admin_api.rpc_log),
    "/sandbox/state": ({"GET"}, admin_api.state),
}


class _ConnectionReset(Exception):
    """Raised by the app to make the handler drop the connection (simulated outage)."""


class _Handler(WSGIHandler):
    """pywsgi handler: TCP_NODELAY on keep-alive connections (pywsgi writes headers and body
    separately, which with Nagle + delayed ACK costs ~40 ms per request), and a way for the
    app to reset its connection (fault "reset")."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def run_application(self) -> None:
        try:
            super().run_application()
        except _ConnectionReset:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            raise OSError(errno.ECONNRESET, "sandbox fault: connection reset") from None


def _request(environ: dict[str, Any]) -> Request:
    """The request as a venue reads it: leniently (no gate of the daemon's), the body bounded."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
    return Request(method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
                   path=environ.get("PATH_INFO", "/") or "/",
                   query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
                   headers=environ_headers(environ), body=body)


class SandboxApp:
    """The WSGI application: routing plus latency and outage faults."""

    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return respond(start_response, self.route(_request(environ)))

    def route(self, req: Request) -> Response:
        """Dispatch one request."""
        ex = self.ex
        if req.path.startswith("/sandbox/"):
            allowed_route = ADMIN_ROUTES.get(req.path)
            if allowed_route is None:
                return Response.text(404, f"No route {req.path}")
            allowed, fn = allowed_route
            if req.method not in allowed:
                return Response.text(405, "Method Not Allowed")
            try:
                return fn(ex, req)
            except (admin_api.BadRequest, ValueError) as exc:
                return Response(400, {"error": str(exc)})
        swift = SWIFT_ROUTES.get((req.method, req.path))
        if swift is not None:
            posted = swift_api.post_arrived(ex, req) if req.path == "/orders" else None
            self._delay(ex.faults.latency_ms + ex.faults.swift_latency_ms)
            resp = swift(ex, req)
            if posted is not None:
                swift_api.post_answered(posted, resp)
            return resp
        which = RPC_PATHS.get(req.path)
        if which is not None:
            if req.method != "POST":
                return Response.text(405, "Used HTTP Method is not allowed. POST or OPTIONS "
                                          "is required")
            self._delay(ex.faults.latency_ms + ex.faults.rpc_latency_ms)
            down = ex.faults.rpc_primary_down if which == "primary" else ex.faults.rpc_backup_down
            if down:
                ex.stats.incr(f"rpc_{which}_fault")
                return self._outage()
            limit = ex.faults.rpc_rps_limit
            if limit > 0:
                calls, first_id = rpc_api.peek(req.body)
                wait = ex.rpc_limiter.admit(which, limit, calls)
                if wait > 0:
                    ex.stats.incr("rpc_rate_limited")
                    ex.stats.incr(f"rpc_rate_limited_{which}")
                    return rpc_api.rate_limited(wait, first_id)
            return rpc_api.handle(ex, req)
        if req.path in {p for _, p in SWIFT_ROUTES}:
            return Response.text(405, "Method Not Allowed")
        return Response.text(404, f"No route {req.path}")

    def _delay(self, ms: int) -> None:
        if ms > 0:
            gevent.sleep(ms / 1000.0)

    def _outage(self) -> Response:
        mode = self.ex.faults.rpc_down_mode
        if mode == "reset":
            raise _ConnectionReset()
        if mode == "hang":
            gevent.sleep(self.ex.faults.hang_seconds())
        return Response.text(503, "Service Unavailable")


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the sandbox serves loopback addresses only, not {host!r}")


class SandboxServer:
    """In-process sandbox: ``start()`` binds (port 0 picks a free port), ``stop()`` shuts down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0,
                 slot_ms: int = 400, config: ExchangeConfig | None = None,
                 markets: dict[int, MarketSpec] | None = None,
                 genesis_ts: float | None = None,
                 faults: dict[str, Any] | None = None) -> None:
        """``faults``: start-up fault values (e.g. ``{"rpc_latency_ms": 30,
        "rpc_rps_limit": 50}``) that clearing the faults returns to."""
        _check_loopback(host)
        self.host = host
        self.requested_port = int(port)
        self.exchange = Exchange(seed=seed, slot_ms=slot_ms, markets=markets, config=config,
                                 genesis_ts=genesis_ts)
        if faults:
            self.exchange.faults.set_baseline(faults)
        self._server: WSGIServer | None = None

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Base URL: Swift base, RPC primary (POST /) and control paths."""
        return f"http://{self.host}:{self.port}"

    @property
    def rpc_url(self) -> str:
        """Primary JSON-RPC endpoint."""
        return self.url + "/"

    @property
    def backup_rpc_url(self) -> str:
        """Backup JSON-RPC endpoint (same chain)."""
        return self.url + "/backup"

    def start(self) -> SandboxServer:
        """Bind, serve in background greenlets and start the slot clock."""
        if self._server is not None:
            return self
        server = WSGIServer((self.host, self.requested_port), SandboxApp(self.exchange),
                            handler_class=_Handler, log=None, error_log=log)
        server.start()
        self._server = server
        self.exchange.clock.start()
        log.info("sandbox listening on %s (seed %s, slot %s ms)", self.url, self.exchange.seed,
                 self.exchange.clock.slot_ms)
        return self

    def serve_forever(self) -> None:
        """Start and block until killed (the CLI)."""
        self.start()
        assert self._server is not None
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop the clock and the listener."""
        self.exchange.clock.stop()
        if self._server is not None:
            self._server.stop(timeout=2.0)
            self._server = None

    def step(self, slots: int = 1) -> int:
        """Advance the slot clock (manual mode in tests)."""
        return self.exchange.clock.step(slots)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
