"""Runs the real daemon as a child process for end-to-end tests, and listens as systemd would;
and what the tests (and the benchmarks) that run daemons share: a sandbox fixture, server key
files, free ports, polling until a condition holds."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests

from sandbox.server import SandboxServer
from storage.signals import SignalWaiter

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
POLL_S = 0.05


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def key_file(path: Path) -> Path:
    """A new server key (32 random bytes, mode 0600) written at `path`; the path."""
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o600)
    return path


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = START_TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy, which it returns; TimeoutError naming
    `what` after `timeout_s` (the tests and the benchmarks poll with it)."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        gevent.sleep(POLL_S)
    return result


def sandbox_fixture(seed: int, slot_ms: int) -> Any:
    """A test module's `sandbox` fixture (`sandbox = sandbox_fixture(...)`): a sandbox on a free
    loopback port, with this seed and slot time, started for the test and stopped after it."""

    @pytest.fixture
    def sandbox() -> Iterator[SandboxServer]:
        with SandboxServer("127.0.0.1", 0, seed=seed, slot_ms=slot_ms) as server:
            yield server

    return sandbox


def cli_json(daemon: Daemon, *args: str, code: int = 0) -> dict[str, Any]:
    """Run a CLI command with `--json` against the daemon's settings; its JSON answer (the
    exit status must be `code`)."""
    result = daemon.cli(*args, "--json")
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def done_with_one_trade(story: dict[str, Any]) -> bool:
    """A signal's story (`signal show`): it finished with one completed trade."""
    return story["status"] == "done" and [t["status"] for t in story["trades"]] == ["completed"]


class NotifyListener:
    """The sd_notify socket a systemd service manager would offer, as a test fixture."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.seen: list[str] = []

    def wait_for(self, predicate: str, timeout: float = START_TIMEOUT_S) -> str:
        """Block until a notification containing `predicate` arrives; returns it."""
        for message in self.seen:
            if predicate in message:
                return message
        self.sock.settimeout(timeout)
        while True:
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                raise AssertionError(f"no {predicate!r} from the daemon; saw {self.seen}") from None
            self.seen.append(message)
            if predicate in message:
                return message

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """`python runtime.py run` with its own state dir, ports and notify socket."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qv-daemon-"))
        self.notify = NotifyListener(self.dir)
        self.env = {
            **os.environ,
            "STATE_DIR": str(self.dir / "state"),
            "WEBHOOK_PORT": str(free_port()),
            "ADMIN_PORT": str(free_port()),
            "CRASH_DRILLS_ENABLED": "true",  # the tests drill; production leaves them off
            "METRICS_PORT": str(free_port()),
            "SANDBOX_PORT": str(free_port()),
            "NOTIFY_SOCKET": str(self.notify.path),
            "SUPERVISOR_BACKOFF_BASE_MS": "10",
            **(env or {}),
        }
        self.log_path = self.dir / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the webhook/API server."""
        return f"http://127.0.0.1:{self.env['WEBHOOK_PORT']}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin listener (admin API, crash drills, health)."""
        return f"http://127.0.0.1:{self.env['ADMIN_PORT']}"

    @property
    def metrics_url(self) -> str:
        """URL of the Prometheus endpoint."""
        return f"http://127.0.0.1:{self.env['METRICS_PORT']}/metrics"

    def start(self, *options: str) -> Daemon:
        """Start the daemon (`run` with `options`, e.g. --role worker) and wait for READY=1."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "runtime.py"), "run", *options], env=self.env,
                cwd=self.dir,
                stdout=log, stderr=subprocess.STDOUT)
        self.notify.wait_for("READY=1")
        return self

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another `runtime.py` command with the daemon's environment."""
        return subprocess.run([sys.executable, str(ROOT / "runtime.py"), *args], env=self.env,
                              cwd=self.dir, capture_output=True, text=True, timeout=60)

    def finished(self, signal_id: str, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Wait (told by NOTIFY, within `timeout`) until the signal is final; its story as
        `signal show` prints it."""
        waiter = SignalWaiter(self.env["DATABASE_URL"])
        try:
            waiter.wait([signal_id], timeout)
        finally:
            waiter.close()
        result = self.cli("signal", "show", signal_id, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def get(self, path: str) -> requests.Response:
        """GET a path of the webhook/API server."""
        return requests.get(self.url + path, timeout=5)

    def metrics(self) -> str:
        """The current Prometheus exposition text."""
        return requests.get(self.metrics_url, timeout=5).text

    def wait_exit(self, timeout: float = START_TIMEOUT_S) -> int:
        """Wait for the process to end; returns its exit status."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the daemon (a crash: nothing of it runs after this) and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.wait_exit()

    def log(self) -> str:
        """Everything the daemon wrote."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the daemon if it still runs, and release the notify socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.notify.close()


def until(sandbox: SandboxServer, check: Callable[[], Any], what: str,
          wait_s: float = 15.0) -> Any:
    """`check()` again at every sandbox slot until it answers something truthy (that answer);
    fails naming `what` after `wait_s`."""
    clock = sandbox.exchange.clock
    deadline = time.monotonic() + wait_s
    while not (answer := check()):
        assert time.monotonic() < deadline, f"not within {wait_s:g} s: {what}"
        clock.wait_for_slot(clock.slot + 1, wait_s)
    return answer
