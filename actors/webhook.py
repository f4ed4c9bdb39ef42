"""WebhookActor: owns the HTTP server that receives alerts and answers health and admin calls.

Requests are served on their own greenlets (gevent's WSGI server), never in this actor's
mailbox; the actor owns the server's life: it listens in on_start and closes in on_exit, so a
supervisor restart gives a fresh listener.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gevent.pywsgi import WSGIServer

from supervision import SupervisedActor


@dataclass(frozen=True)
class GetAddress:
    """Ask for the (host, port) the server is bound to (useful when started on port 0)."""


class WebhookActor(SupervisedActor):
    """Serves a WSGI application on host:port for as long as the actor lives."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        super().__init__()
        self._address = (host, port)
        self._app = app
        self._server: WSGIServer | None = None

    def on_start(self) -> None:
        self._server = WSGIServer(self._address, self._app, log=None)
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
