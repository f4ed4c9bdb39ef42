"""A raw HTTP/1.1 client for hostile-input tests: the bytes on the wire are exactly the test's
(NUL bytes, invalid UTF-8, any Content-Length, chunked framing), which `requests` would refuse
or normalise. One request per connection (`Connection: close`), answered or refused."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RawResponse:
    """Status and body of one answer (status 0: the server closed without answering)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def chunked(body: bytes, size: int = 7) -> bytes:
    """`body` in Transfer-Encoding: chunked framing, `size` bytes a chunk."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def request(address: tuple[str, int], method: str, target: bytes,
            headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b"", *,
            framing: str = "length", timeout_s: float = TIMEOUT_S) -> RawResponse:
    """Send one request; `framing` is "length" (Content-Length), "chunked" or "none"."""
    head = [b"%s %s HTTP/1.1" % (method.encode(), target), b"Host: 127.0.0.1",
            b"Connection: close"]
    head += [name + b": " + value for name, value in headers]
    if framing == "length":
        head.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        payload = chunked(body)
    else:
        payload = body
    return send(address, b"\r\n".join(head) + b"\r\n\r\n" + payload, timeout_s)


def send(address: tuple[str, int], data: bytes, timeout_s: float = TIMEOUT_S) -> RawResponse:
    """Write `data`, then read the answer until the server closes the connection."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        # refused before the whole body was sent: the answer may still be there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> RawResponse:
    """Read one answer: its head, then Content-Length bytes of body (or up to EOF without
    one); a reset after the answer ends it. Status 0: the server closed without answering."""
    received = b""

    def more() -> bool:
        nonlocal received
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return False
        received += chunk
        return bool(chunk)

    while True:
        while received.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in received:
            received = received.partition(b"\r\n\r\n")[2]  # Expect: 100-continue
        if b"\r\n\r\n" in received and not received.startswith(b"HTTP/1.1 100 "):
            break
        if not more():
            return RawResponse(0, {}, received)
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1."):
        return RawResponse(0, {}, received)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    length = int(headers["content-length"]) if "content-length" in headers else None
    while length is None or len(body) < length:
        before = len(received)
        if not more():
            break
        body += received[before:]
    return RawResponse(status, headers, body if length is None else body[:length])
