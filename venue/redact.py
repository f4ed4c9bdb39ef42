"""Redaction of secrets in URLs, so that no API key reaches a log line, repr or exception."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_REDACTED = "***"


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with its query values, userinfo and long path segments hidden.

    RPC providers put keys in the query (``?api-key=``) or in the path (Triton's
    ``https://host/<token>``), so both are hidden; scheme, host and port stay readable.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"{_REDACTED}@{host}"
    query = ""
    if parts.query:
        names = [kv.split("=", 1)[0] for kv in parts.query.split("&") if kv]
        query = "&".join(f"{name}={_REDACTED}" for name in names)
    path = "/".join(
        _REDACTED if len(segment) >= 16 else segment for segment in parts.path.split("/")
    )
    return urlunsplit((parts.scheme, host, path, query, ""))
