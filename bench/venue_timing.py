"""What the venue saw of one alert: Swift POST and fill times, RPC calls (for venue_speed_bench).

Everything here reads the sandbox's own records, so times are as the venue sees them:
- ``GET /sandbox/swift-posts?since=t``: every ``POST /orders`` with ``at``, its wall-clock
  arrival time (before the injected Swift latency);
- ``GET /sandbox/fills``: the fill log, each fill with ``at`` (wall time) and ``authority``;
- ``GET /sandbox/stats``: ``rpc_calls`` per JSON-RPC method (monotonic, primary + backup, each
  call of a batch counted) and ``totals.rpc_rate_limited`` (requests answered HTTP 429).

RPC calls are sampled by :class:`StatsPoller`, a separate OS process (this file run as a
script) that GETs /sandbox/stats every 20 ms over one keep-alive connection and writes one line
per sample: the wall time the request left, the wall time the answer came back, the counters.
It is a separate process so that its HTTP and JSON work does not run on the daemon's event loop
(the benchmark assembles the daemon in its own process). The sandbox still answers each GET.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

POLL_INTERVAL_S = 0.02
TIMEOUT_S = 10.0


# --- the sandbox's records ------------------------------------------------------------------


def swift_posts(sandbox_url: str, since: float) -> list[dict[str, Any]]:
    """Every Swift POST that arrived after `since` (wall time), oldest first."""
    answer = requests.get(f"{sandbox_url}/sandbox/swift-posts", params={"since": repr(since)},
                          timeout=TIMEOUT_S)
    answer.raise_for_status()
    return answer.json()["posts"]


def fills_since(sandbox_url: str, since: float) -> list[dict[str, Any]]:
    """Fills booked at or after `since` (wall time), oldest first."""
    answer = requests.get(f"{sandbox_url}/sandbox/fills", timeout=TIMEOUT_S)
    answer.raise_for_status()
    return [f for f in answer.json()["fills"] if f.get("at", 0.0) >= since]


def set_faults(sandbox_url: str, **knobs: Any) -> dict[str, Any]:
    """POST /sandbox/faults (a partial update); returns the faults now in force."""
    answer = requests.post(f"{sandbox_url}/sandbox/faults", json=knobs, timeout=TIMEOUT_S)
    answer.raise_for_status()
    return answer.json()


# --- RPC counters, sampled in a child process -----------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One /sandbox/stats read: sent/received wall times and the counters it returned, with
    the CPU seconds used so far by the watched processes and the machine's busy/total
    jiffies (/proc/stat), read right after."""

    sent: float
    received: float
    rpc_calls: dict[str, int]
    rate_limited: int
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields_ = stat.read().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (every thread's /proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def sandbox_pid(daemon_pid: int) -> int | None:
    """The daemon's sandbox child, by its command line."""
    for pid in child_pids(daemon_pid):
        with contextlib.suppress(OSError):
            if b"sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def _poll_forever(sandbox_url: str, out_path: str, watched: dict[str, int]) -> None:
    """The child process: sample /sandbox/stats every POLL_INTERVAL_S until killed."""
    parts = urlsplit(sandbox_url)
    conn: http.client.HTTPConnection | None = None
    with open(out_path, "a", buffering=1) as out:
        while True:
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
                sent = time.time()
                conn.request("GET", "/sandbox/stats")
                body = conn.getresponse().read()
                received = time.time()
                cpu = {name: _cpu_seconds(pid) for name, pid in watched.items()}
                stats = json.loads(body)
                out.write(json.dumps([sent, received, stats.get("rpc_calls", {}),
                                      stats.get("totals", {}).get("rpc_rate_limited", 0),
                                      cpu, _machine_jiffies()]) + "\n")
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - started)))


class StatsPoller:
    """Samples the sandbox's RPC counters every 20 ms in a child process, while in a `with`."""

    def __init__(self, sandbox_url: str, work_dir: Path, watched: dict[str, int]) -> None:
        """`watched`: name -> pid of processes whose CPU time each sample records."""
        self._url = sandbox_url
        self._watched = [f"{name}={pid}" for name, pid in watched.items()]
        work_dir.mkdir(parents=True, exist_ok=True)
        self._path = work_dir / f"rpc-samples-{time.time_ns()}.jsonl"
        self._proc: subprocess.Popen[bytes] | None = None
        self.samples: list[Sample] = []

    def __enter__(self) -> StatsPoller:
        self._path.touch()
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()),
                                       "--poll", self._url, str(self._path),
                                       *self._watched])
        deadline = time.monotonic() + TIMEOUT_S
        while not self._read():  # its first sample is the "before the alert" reading
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("the RPC stats poller did not start")
            time.sleep(POLL_INTERVAL_S)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=TIMEOUT_S)
        self._read()
        self._path.unlink(missing_ok=True)

    def _read(self) -> list[Sample]:
        lines = self._path.read_text().splitlines()
        rows = []
        for line in lines:
            try:
                sent, received, calls, limited, cpu, machine = json.loads(line)
            except ValueError:
                continue  # a line being written
            rows.append(Sample(sent, received, calls, limited, cpu, tuple(machine)))
        self.samples = rows
        return rows


def calls_between(before: Sample, after: Sample) -> dict[str, int]:
    """RPC calls per method made between two samples (methods with none left out)."""
    delta = {m: n - before.rpc_calls.get(m, 0) for m, n in after.rpc_calls.items()}
    return {m: n for m, n in sorted(delta.items()) if n > 0}


def last_read_before(samples: list[Sample], t: float) -> Sample:
    """The newest sample whose answer came back before `t` (all its calls were made by t)."""
    done = [s for s in samples if s.received <= t]
    return done[-1] if done else samples[0]


def first_read_after(samples: list[Sample], t: float) -> Sample:
    """The oldest sample sent after `t` (it counts every call made by t), else the last one."""
    later = [s for s in samples if s.sent >= t]
    return later[0] if later else samples[-1]


# --- one alert, as the venue saw it -------------------------------------------------------


@dataclass
class AlertTiming:
    """One alert's times in ms from its arrival (t0), and the RPC calls it cost."""

    kind: str
    ack_ms: float
    source_post_ms: float | None
    source_fill_ms: float | None  # the source's own order filled (its auction's end for it)
    first_sub_post_ms: float | None
    last_sub_post_ms: float | None
    last_sub_fill_ms: float | None
    sub_posts: int  # subscribers whose order reached the venue
    sub_post_attempts: int  # POSTs from subscribers (retries included)
    sub_rejected: int  # subscriber POSTs answered other than 200
    sub_fills_swift: int
    sub_fills_other: int  # on-chain placeAndTake fills (the legacy fallback)
    last_sub_swift_fill_ms: float | None
    median_sub_fill_ms: float | None
    rpc_before_first_sub_post: dict[str, int] = field(default_factory=dict)
    rpc_total: dict[str, int] = field(default_factory=dict)
    rpc_limited_total: int = 0
    # share of one core each watched process used from the alert to the last subscriber POST
    # ("machine": cores busy, all processes)
    cpu_busy: dict[str, float] = field(default_factory=dict)
    # per-copy stage -> (median, last) ms after the alert, filled in from the database
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def rpc_before(self) -> int:
        """RPC calls between the alert and the first subscriber POST."""
        return sum(self.rpc_before_first_sub_post.values())

    @property
    def rpc_all(self) -> int:
        """RPC calls between the alert and the last subscriber fill."""
        return sum(self.rpc_total.values())


def _ms(t: float | None, t0: float) -> float | None:
    return None if t is None else (t - t0) * 1000


def measure(kind: str, t0: float, acked: float, source: str, subscribers: set[str],
            posts: list[dict[str, Any]], fills: list[dict[str, Any]],
            samples: list[Sample]) -> AlertTiming:
    """Compute one alert's timing from the venue's records (all wall times, t0 = arrival)."""
    posts = [p for p in posts if p["at"] >= t0]
    source_at = min((p["at"] for p in posts if p["authority"] == source), default=None)
    first_post: dict[str, float] = {}
    attempts = rejected = 0
    for post in posts:
        who = post["authority"]
        if who in subscribers:
            attempts += 1
            rejected += post["status"] != 200
            first_post.setdefault(who, post["at"])
    source_fill = min((f["at"] for f in fills if f["authority"] == source and f["at"] >= t0),
                      default=None)
    sub_fills = [f for f in fills if f["authority"] in subscribers and f["at"] >= t0]
    swift_fills = [f for f in sub_fills if f.get("source") == "swift_maker"]
    last_fill_per_sub: dict[str, float] = {}
    for fill in sub_fills:
        last_fill_per_sub[fill["authority"]] = max(fill["at"], last_fill_per_sub.get(
            fill["authority"], 0.0))
    first_sub = min(first_post.values(), default=None)
    last_fill = max(last_fill_per_sub.values(), default=None)
    start = samples[0]
    before = last_read_before(samples, first_sub) if first_sub is not None else start
    total = first_read_after(samples, last_fill) if last_fill is not None else samples[-1]
    return AlertTiming(
        kind=kind, ack_ms=(acked - t0) * 1000, source_post_ms=_ms(source_at, t0),
        source_fill_ms=_ms(source_fill, t0),
        first_sub_post_ms=_ms(first_sub, t0),
        last_sub_post_ms=_ms(max(first_post.values(), default=None), t0),
        last_sub_fill_ms=_ms(last_fill, t0), sub_posts=len(first_post),
        sub_post_attempts=attempts, sub_rejected=rejected,
        sub_fills_swift=len(swift_fills), sub_fills_other=len(sub_fills) - len(swift_fills),
        last_sub_swift_fill_ms=_ms(max((f["at"] for f in swift_fills), default=None), t0),
        median_sub_fill_ms=_ms(statistics.median(last_fill_per_sub.values()), t0)
        if last_fill_per_sub else None,
        rpc_before_first_sub_post=calls_between(start, before),
        rpc_total=calls_between(start, total),
        rpc_limited_total=total.rate_limited - start.rate_limited,
        cpu_busy=_busy(start, last_read_before(samples, max(first_post.values(), default=t0))))


def _busy(start: Sample, end: Sample) -> dict[str, float]:
    wall = end.received - start.received
    if wall <= 0:
        return {}
    busy = {name: (end.cpu_s.get(name, 0.0) - cpu) / wall for name, cpu in start.cpu_s.items()}
    total = end.machine[1] - start.machine[1]
    if total > 0:
        busy["machine"] = (end.machine[0] - start.machine[0]) / total * (os.cpu_count() or 1)
    return busy


def spread(values: list[float]) -> tuple[float, float]:
    """(median, max) of a non-empty list."""
    return statistics.median(values), max(values)


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are known (None if none is)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def fmt_ms(value: float | None) -> str:
    """A duration for the tables: ms below 10 s, else seconds."""
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


if __name__ == "__main__" and sys.argv[1:2] == ["--poll"]:
    _poll_forever(sys.argv[2], sys.argv[3],
                  {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])})
