"""The Prometheus /metrics server: owned by the process, so it answers while actors restart.

In a multi-process node it runs in the intake and serves every process's metrics, merged from
the node's metric files (observability.multiprocess)."""

from __future__ import annotations

from gevent.pywsgi import WSGIServer
from prometheus_client import disable_created_metrics, make_wsgi_app

from observability.multiprocess import node_registry
from observability.process_gauges import start_process_gauges


def start_exporter(host: str, port: int) -> WSGIServer:
    """Serve the node's registry on http://host:port/metrics; returns the running server."""
    disable_created_metrics()
    start_process_gauges()
    server = WSGIServer((host, port), make_wsgi_app(node_registry()), log=None)
    server.start()
    return server
