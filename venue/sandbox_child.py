"""The sandbox as a child process of the daemon (VENUE=sandbox with no SANDBOX_URL).

The child prints one "sandbox ready url=..." line once it listens; the parent waits for that
line (not for a guess of time), then drains the rest of the child's stdout so it never blocks.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import gevent

log = logging.getLogger(__name__)

READY = re.compile(r"sandbox ready url=(\S+) rpc=(\S+) backup_rpc=(\S+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class SandboxChild:
    """A running `quantumvault sandbox` child, with the URLs it announced."""

    def __init__(self, port: int, seed: int, slot_ms: int = 400, *, rpc_latency_ms: int = 0,
                 rpc_rps_limit: int = 0, swift_latency_ms: int = 0,
                 fill_profile: str = "edge") -> None:
        runtime = Path(__file__).resolve().parent.parent / "runtime.py"
        self._process = subprocess.Popen(
            [sys.executable, str(runtime), "sandbox", "--host", "127.0.0.1", "--port", str(port),
             "--seed", str(seed), "--slot-ms", str(slot_ms),
             "--rpc-latency-ms", str(rpc_latency_ms), "--rpc-rps-limit", str(rpc_rps_limit),
             "--swift-latency-ms", str(swift_latency_ms), "--fill-profile", fill_profile],
            stdout=subprocess.PIPE, text=True)
        try:
            with gevent.Timeout(START_TIMEOUT_S):
                self.url, self.rpc_url, self.backup_rpc_url = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._drain = gevent.spawn(self._forward_output)
        log.info("sandbox child %s listening on %s", self._process.pid, self.url)

    def _wait_ready(self) -> tuple[str, str, str]:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            match = READY.search(line)
            if match:
                return match[1], match[2], match[3]
        raise RuntimeError(f"sandbox exited before it was ready (exit {self._process.wait()})")

    def _forward_output(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            log.debug("sandbox: %s", line.rstrip())

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
