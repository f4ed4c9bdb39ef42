"""Keep-alive HTTP connections to one venue endpoint, on the standard library's http.client.

The venue clients make hundreds of small requests per fan-out (a Swift POST per order, batched
JSON-RPC reads), and the HTTP client's own CPU is the daemon's largest cost per order: measured
on this code's POST (gevent, loopback), `requests` spends ~1.5 ms of CPU per call, urllib3 alone
~1.1 ms, http.client ~0.6 ms. So the clients speak http.client directly through this pool: the
proxy (from the environment, read once, as `requests` would) and TLS (the system's CA store) are
settled at creation, idle connections are reused newest first, and a connection the server has
closed meanwhile is never reused for a request (it could not be told apart from a lost answer).
"""

from __future__ import annotations

import http.client
import select
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit


class ConnectFailed(OSError):
    """No connection could be made (its cause says why): nothing was sent."""


@dataclass(frozen=True)
class HttpResponse:
    """A whole response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpEndpoint:
    """Pooled keep-alive connections to one base URL; every request has its own timeouts."""

    def __init__(self, base_url: str, pool_size: int = 16) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base_path = parts.path.rstrip("/")
        self._query = parts.query
        self._pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._tls = ssl.create_default_context() if self._https else None
        proxies = urllib.request.getproxies()
        proxy = None if urllib.request.proxy_bypass(self._host) else proxies.get(parts.scheme)
        self._proxy = urlsplit(proxy) if proxy else None

    def request(self, method: str, path: str = "", body: bytes | None = None,
                headers: dict[str, str] | None = None, *, connect_timeout_s: float,
                read_timeout_s: float) -> HttpResponse:
        """Send one request and read its whole answer; socket and HTTP errors (OSError,
        http.client.HTTPException) propagate, and their connection is dropped."""
        target = (self._base_path + path) or "/"
        if self._query:
            target += ("&" if "?" in target else "?") + self._query
        if self._proxy is not None and not self._https:  # a plain-HTTP proxy takes the URL
            target = f"http://{self._host}:{self._port}{target}"
        conn = self._connection(connect_timeout_s)
        try:
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout_s)
            conn.request(method, target, body=body, headers=headers or {})
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            conn.close()
            raise
        if answer.will_close or len(self._idle) >= self._pool_size:
            conn.close()
        else:
            self._idle.append(conn)
        return HttpResponse(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def close(self) -> None:
        """Close the idle connections (one in use closes when its request ends)."""
        while self._idle:
            self._idle.pop().close()

    def _connection(self, connect_timeout_s: float) -> http.client.HTTPConnection:
        while self._idle:
            idle = self._idle.pop()
            if idle.sock is not None and not _readable(idle.sock):
                return idle
            idle.close()  # closed by the server, or it sent what nobody asked for
        host, port = self._host, self._port
        if self._proxy is not None:
            host, port = self._proxy.hostname or host, self._proxy.port or 80
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout_s,
                                               context=self._tls)
            if self._proxy is not None:
                conn.set_tunnel(self._host, self._port)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout_s)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise ConnectFailed(type(exc).__name__) from exc
        return conn


def _readable(sock: object) -> bool:
    """An idle keep-alive socket with something to read has been closed (or spoken on)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
