"""WebhookActor: owns one HTTP listener; the tree runs two (actors/tree.py): `webhook`, which
receives alerts and answers health checks, and `admin_api`, which answers admin calls.

Requests are served on their own greenlets (gevent's WSGI server), never in this actor's
mailbox; the actor owns the server's life: it listens in on_start and closes in on_exit, so a
supervisor restart gives a fresh listener.

The server is bounded so that hostile or idle clients cannot starve it of descriptors: at most
`max_connections` connections are served at once (more wait in the kernel's listen backlog,
holding no descriptor of ours), and each waits at most `read_timeout_s` for a request line,
for its headers, for its body (the router's deadline) or on an idle keep-alive connection; a
socket timeout of the same length bounds every single read and write. A request gevent cannot
parse answers 400 (408 when it is too slow) with one log line, never a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from supervision import SupervisedActor

log = logging.getLogger(__name__)

# Connections beyond the limit wait here, in the kernel, established but not accepted (no
# descriptor of ours), served in order as slots free; the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     b"Content-Length: 0\r\n\r\n")
_BAD_REQUEST_RESPONSE = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                         b"Content-Length: 0\r\n\r\n")


@dataclass(frozen=True)
class GetAddress:
    """Ask for the (host, port) the server is bound to (useful when started on port 0)."""


class _RequestTimeout(Exception):
    """The request line or headers did not arrive within the read timeout."""


class _LogAdapter:
    """gevent's error log as one warning line per write (its messages name no secret: the
    handler below logs only exception types for client errors)."""

    def write(self, message: str) -> None:
        log.warning("http server: %s", message.rstrip()[:300])

    def flush(self) -> None:
        """Nothing is buffered."""


class _Handler(WSGIHandler):
    """gevent's handler with deadlines on reading a request, and quiet client errors."""

    server: BoundedWSGIServer

    def _connection_upgrade_requested(self) -> bool:
        # Nothing here upgrades (no websocket): the body is read through gevent's framing
        # (Content-Length or chunked) like any other, never from the raw socket.
        return False

    def read_requestline(self) -> str:
        # the idle wait of a keep-alive connection ends here too: "" closes the connection
        try:
            with gevent.Timeout(self.server.read_timeout_s, _RequestTimeout):
                return super().read_requestline()
        except _RequestTimeout:
            return ""

    def read_request(self, raw_requestline: str) -> Any:
        with gevent.Timeout(self.server.read_timeout_s, _RequestTimeout):
            return super().read_request(raw_requestline)

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        self.close_connection = True
        if isinstance(ex, (_RequestTimeout, TimeoutError)):
            return ("408", _TIMEOUT_RESPONSE)
        # The message may quote the request line (and a ?secret=): log the type only.
        log.info("refused a malformed HTTP request from %s: %s",
                 self.client_address[0] if isinstance(self.client_address, tuple) else "",
                 type(ex).__name__)
        return ("400", _BAD_REQUEST_RESPONSE)

    def handle_error(self, t: type[BaseException], v: BaseException, tb: Any) -> None:
        if isinstance(v, TimeoutError):  # a client that stopped reading its answer
            self.close_connection = True
            return
        super().handle_error(t, v, tb)


class BoundedWSGIServer(WSGIServer):
    """A WSGI server with a connection limit and read/idle timeouts."""

    handler_class = _Handler

    def __init__(self, address: tuple[str, int], app: Any, *, max_connections: int,
                 read_timeout_s: float) -> None:
        super().__init__(address, app, backlog=LISTEN_BACKLOG, log=None,
                         error_log=_LogAdapter(), spawn=Pool(max_connections))
        self.read_timeout_s = read_timeout_s

    def handle(self, sock: Any, address: Any) -> None:
        sock.settimeout(self.read_timeout_s)
        super().handle(sock, address)


class WebhookActor(SupervisedActor):
    """Serves a WSGI application on host:port for as long as the actor lives."""

    def __init__(self, host: str, port: int, app: Any, max_connections: int = 512,
                 read_timeout_s: float = 10.0) -> None:
        super().__init__()
        self._address = (host, port)
        self._app = app
        self._max_connections = max_connections
        self._read_timeout_s = read_timeout_s
        self._server: WSGIServer | None = None

    def on_start(self) -> None:
        self._server = BoundedWSGIServer(self._address, self._app,
                                         max_connections=self._max_connections,
                                         read_timeout_s=self._read_timeout_s)
        self._server.start()

    def on_exit(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=2.0)
            self._server = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetAddress):
            assert self._server is not None
            return (self._server.server_host, self._server.server_port)
        return super().on_receive(message)
