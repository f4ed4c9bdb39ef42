"""The venue clients' connection pool on real loopback sockets: reuse, and what it never reuses."""

from __future__ import annotations

import socket

import gevent
import pytest

from tests.venue.http_fixtures import ResetServer, ScriptedServer, refused_url
from venue.http_session import ConnectFailed, HttpEndpoint
from venue.swift_errors import classify_exception

TIMEOUTS = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0}


def test_requests_share_one_kept_alive_connection_and_carry_the_base_query() -> None:
    server = ScriptedServer()
    server.routes[("POST", "/rpc")] = lambda environ: (200, environ["REMOTE_PORT"])
    try:
        endpoint = HttpEndpoint(f"{server.url}/rpc?api-key=k1", pool_size=4)
        ports = {endpoint.request("POST", "", b"{}", **TIMEOUTS).body for _ in range(3)}
    finally:
        server.stop()
    assert len(ports) == 1  # one TCP connection for all three
    assert [r.query for r in server.requests] == ["api-key=k1"] * 3


class OneAnswerServer:
    """Answers one request per connection with keep-alive promised, then closes it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def serve_one(self) -> None:
        conn, _ = self.listener.accept()
        self.accepted += 1
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        conn.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = OneAnswerServer()
    endpoint = HttpEndpoint(server.url)
    try:
        for _ in range(2):  # the second request would fail on the closed one
            serving = gevent.spawn(server.serve_one)
            assert endpoint.request("POST", "/orders", b"{}", **TIMEOUTS).body == b"ok"
            serving.get(timeout=5)
    finally:
        server.listener.close()
    assert server.accepted == 2


def test_failures_keep_their_meaning_for_the_unknown_outcome_rules() -> None:
    with pytest.raises(ConnectFailed) as refused:
        HttpEndpoint(refused_url()).request("POST", "/orders", b"{}", **TIMEOUTS)
    outcome = classify_exception(refused.value)
    assert (outcome.reason, outcome.maybe_published) == ("connection_refused", False)

    reset = ResetServer()
    try:
        with pytest.raises(OSError) as lost:
            HttpEndpoint(reset.url).request("POST", "/orders", b"{}", **TIMEOUTS)
    finally:
        reset.stop()
    outcome = classify_exception(lost.value)
    assert (outcome.reason, outcome.maybe_published) == ("connection_reset", True)

    hanging = ScriptedServer()
    hanging.routes[("POST", "/orders")] = hanging.hang
    try:
        with pytest.raises(TimeoutError) as silent:
            HttpEndpoint(hanging.url).request("POST", "/orders", b"{}", connect_timeout_s=2.0,
                                              read_timeout_s=0.2)
    finally:
        hanging.stop()
    outcome = classify_exception(silent.value)
    assert (outcome.reason, outcome.maybe_published) == ("timeout", True)
