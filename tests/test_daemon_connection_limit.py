"""Descriptor exhaustion, replayed on the real daemon: 1,100 idle connections under
systemd's default limit of 1,024 descriptors. Before the connection limit the daemon accepted
them all, then refused /healthz and every alert with 'Too many open files'; now it serves at
most WEBHOOK_MAX_CONNECTIONS at once (the rest wait in the kernel, holding none of its
descriptors) and cuts idle ones after WEBHOOK_READ_TIMEOUT_S, so /healthz is answered."""

from __future__ import annotations

import errno
import resource
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.daemon import Daemon

IDLE = 1100
SYSTEMD_NOFILE = 1024


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    running = Daemon({"WEBHOOK_READ_TIMEOUT_S": "1"})
    try:
        yield running.start()
    finally:
        running.stop()


def _open_idle(address: tuple[str, int], count: int) -> list[socket.socket]:
    """`count` connections that never send a byte (connect without waiting for the accept)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        assert sock.connect_ex(address) in (0, errno.EINPROGRESS, errno.EAGAIN)
        sockets.append(sock)
    return sockets


def test_idle_connections_beyond_the_descriptor_limit_do_not_starve_healthz(
        daemon: Daemon) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE + 200:
        pytest.skip(f"this test process may open only {hard} descriptors")
    if soft != resource.RLIM_INFINITY and soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (IDLE + 200, hard))
    assert daemon.process is not None
    resource.prlimit(daemon.process.pid, resource.RLIMIT_NOFILE, (SYSTEMD_NOFILE,
                                                                  SYSTEMD_NOFILE))
    port = int(daemon.url.rsplit(":", 1)[1])
    idle = _open_idle(("127.0.0.1", port), IDLE)
    try:
        answer = requests.get(daemon.url + "/healthz", timeout=60)
        assert answer.status_code == 200
        ready = requests.get(daemon.url + "/readyz", timeout=60)
        assert ready.status_code == 200, ready.text
    finally:
        for sock in idle:
            sock.close()
    assert "Too many open files" not in daemon.log()
    assert requests.get(daemon.url + "/healthz", timeout=10).status_code == 200
