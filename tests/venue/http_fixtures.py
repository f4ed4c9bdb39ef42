"""Real loopback HTTP/TCP servers for client tests (gevent, 127.0.0.1 only)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer

Reply = tuple[int, str | bytes]
Handler = Callable[[dict], Reply]


@dataclass
class Recorded:
    """One request the server saw."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """WSGI server answering (method, path) from a routes table; records every request."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    release: Event = field(default_factory=Event)

    def __post_init__(self) -> None:
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def hang(self, _environ: dict) -> Reply:
        """A handler that never answers until the test tears down (forces client timeouts)."""
        self.release.wait(10)
        return 599, b""

    def _app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        rec = Recorded(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                       environ.get("QUERY_STRING", ""), headers, body)
        self.requests.append(rec)
        handler = self.routes.get((rec.method, rec.path))
        if handler is None:
            status, payload = 404, b"no route"
        else:
            status, payload = handler({"record": rec, **environ})
        if isinstance(payload, str):
            payload = payload.encode()
        start_response(f"{status} X", [("Content-Type", "text/plain"),
                                       ("Content-Length", str(len(payload)))])
        return [payload]

    def stop(self) -> None:
        self.release.set()
        self._server.stop(timeout=1)


class ResetServer:
    """TCP server that accepts, reads a little, then resets the connection (RST)."""

    def __init__(self) -> None:
        self._server = StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @staticmethod
    def _handle(sock: socket.socket, _addr) -> None:
        sock.recv(1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def stop(self) -> None:
        self._server.stop(timeout=1)


def refused_url() -> str:
    """A loopback URL whose port was just released, so connecting is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


__all__ = ["Event", "ResetServer", "ScriptedServer", "gevent", "refused_url"]
