"""The Prometheus /metrics server: owned by the process, so it answers while actors restart."""

from __future__ import annotations

from gevent.pywsgi import WSGIServer
from prometheus_client import disable_created_metrics, make_wsgi_app

from supervision.metrics import register_mailbox_collector


def start_exporter(host: str, port: int) -> WSGIServer:
    """Serve the default registry on http://host:port/metrics; returns the running server."""
    disable_created_metrics()
    register_mailbox_collector()
    server = WSGIServer((host, port), make_wsgi_app(), log=None)
    server.start()
    return server
