"""Resilience numbers of the real daemon (run by hand; prints per-step lines and a markdown table).

    .venv/bin/python bench/resilience_bench.py [--only kill|drain|pg-restart|outage|ack]
        [--kill-trials 5] [--outage-s 30] [--seed 7] [--slot-ms 400] [--rpc-latency-ms 40] ...

Each measurement runs `python runtime.py run` as a child process (tests/daemon.py: its own
STATE_DIR, ports and notify socket; READY=1 awaited) against two things this script owns:
- a private embedded PostgreSQL (pgserver) in a temporary directory, a fresh database per
  measurement, which the script stops and starts for the restart and outage measurements
  (no one else's database is touched);
- the exchange sandbox as a separate process (`python -m sandbox`) at venue timing by default:
  400 ms slots, JSON-RPC 40 ms per request and limited to 50 calls/s, Swift 30 ms per request,
  the `v3` fill profile (as bench/venue_speed_bench.py).
Every daemon setting is its default (inherited settings are dropped from the environment) but
the per-bot webhook rate limit (WEBHOOK_BOT_RATE_PER_S / WEBHOOK_BOT_BURST: 1000) and the keys.
Bots are provisioned through the operator CLI (`--json`); each bot has its own wallet, so its
orders are counted at the sandbox by its agent's authority. Alerts are unique TradingView
bodies (an `order_id` each) that open and close one contract alternately: one order each.

Measurements:
1. kill: a published bot with --subscribers copies; per trial one alert, SIGKILL of the daemon
   at a random moment (seeded RNG, 0 to --kill-max-delay-s after the 202), a restart on the
   same STATE_DIR, a wait until the source signal, every copy and every retry job are final,
   then the fills per bot at the sandbox since the alert: lost = bots with 0, doubled = > 1.
2. drain: alerts paced at --drain-rate across --drain-bots bots, SIGTERM after --drain-after-s;
   SIGTERM -> process exit, the daemon's own "drained in X s" line, the answers to alerts sent
   during the drain that were not 202; then a restart and every accepted alert's fills checked.
3. pg-restart: with the daemon idle, `pg_ctl stop -m fast`, /readyz seen 503, then the start
   command: start -> PostgreSQL accepting, start -> /readyz 200 again.
4. outage: PostgreSQL stopped for --outage-s while alerts are paced at --outage-rate across
   --outage-bots bots; the answers (202 journal / 202 accepted / 503 / other); then the start,
   and the journaled alerts counted final `done` and filled once at the sandbox.
5. ack: alerts paced at --ack-rate for --ack-s across --ack-bots bots (each bot warmed up with
   one open/close first); the client-side latency of every POST (send -> answer, new TCP
   connection each, as TradingView does), p50/p99/max, the count of 202, and how many of the
   signals were final within --wait-s after the last one.
Client-side times include this process's own scheduling (gevent, one process sending).
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402
import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.settings import SETTINGS
from storage.signals import FINAL_STATUSES
from tests.daemon import Daemon, free_port

HTTP_TIMEOUT_S = 10.0
POLL_S = 0.05
CLI_PARALLEL = 3


# --- small helpers ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def fmt_s(value: float | None) -> str:
    """Seconds, readable ('-' for none)."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def wait_until(check: Callable[[], Any], what: str, timeout_s: float) -> Any:
    """Poll `check` until truthy; TimeoutError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        gevent.sleep(POLL_S)
    return result


def alert_body(tag: str, n: int) -> dict[str, str]:
    """The n-th alert of a bot (n from 0): even opens one contract, odd closes it."""
    opening = n % 2 == 0
    return {"action": "buy" if opening else "sell", "contracts": "1",
            "position_size": "1" if opening else "0", "order_id": f"{tag}-{n}"}


@dataclass
class Row:
    """One line of the final table."""

    measure: str
    n: str
    result: str


@dataclass
class Answer:
    """One webhook POST as the client saw it."""

    bot: int
    sent: float  # time.monotonic() when the request left
    latency: float | None  # None: no HTTP answer (refused, reset, timeout)
    status: int | None
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


# --- the private PostgreSQL and the sandbox ---------------------------------------------------


class PrivatePostgres:
    """A pgserver PostgreSQL in a temp dir that this script alone uses, stops and starts."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qv-bench-pg-"))
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import pg_ctl
        self._pg_ctl = pg_ctl
        self.server = pgserver.get_server(self.dir / "pgdata", cleanup_mode="delete")
        self.base_uri = self.server.get_uri()

    def database(self) -> str:
        """A new empty database; its URI."""
        name = "bench_" + uuid.uuid4().hex[:10]
        conn = psycopg2.connect(self.base_uri)
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.base_uri.replace("/postgres?", f"/{name}?")

    def stop(self) -> None:
        """`pg_ctl stop -m fast` (waits until it is down)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
                     user=self.server.system_user)

    def start(self) -> None:
        """Start it again, as pgserver does (`pg_ctl -w start`, same socket directory)."""
        with self.server._lock:
            self.server.ensure_postgres_running()
        if self.server.get_uri() != self.base_uri:
            raise RuntimeError("PostgreSQL came back on another socket")

    def close(self) -> None:
        """Stop and delete it."""
        with contextlib.suppress(Exception):
            self.server.cleanup()


class Sandbox:
    """`python -m sandbox` as a child process (it outlives a daemon killed with SIGKILL)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "sandbox", "--port", str(self.port),
                     "--seed", str(args.seed), "--slot-ms", str(args.slot_ms),
                     "--rpc-latency-ms", str(args.rpc_latency_ms),
                     "--rpc-rps-limit", str(args.rpc_rps_limit),
                     "--swift-latency-ms", str(args.swift_latency_ms),
                     "--fill-profile", args.fill_profile]
        self.log_path = Path(tempfile.mkdtemp(prefix="qv-bench-sandbox-")) / "sandbox.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_until(self._up, "the sandbox answers", 30)

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/sandbox/stats", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def fills(self, authority: str, since: float) -> int:
        """Fills the sandbox booked for `authority` at or after `since` (wall time)."""
        answer = requests.get(f"{self.url}/sandbox/fills", params={"authority": authority},
                              timeout=HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return sum(1 for f in answer.json()["fills"] if f.get("at", 0.0) >= since)

    def close(self) -> None:
        """Terminate it."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- the daemon -------------------------------------------------------------------------------


@dataclass
class Bot:
    """A bot that takes alerts: id, secret, and its agent's authority at the venue."""

    bot_id: str
    secret: str
    authority: str
    sent: int = 0  # alerts sent so far (the next one opens when even)


class Lab:
    """The sandbox, the private PostgreSQL, and how to start daemons against them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="qv-bench-"))
        key = self.dir / "server.key"
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
        self.server_keys = f"k1=file:{key}"
        self.pg = PrivatePostgres()
        self.sandbox = Sandbox(args)

    def env(self, database_url: str) -> dict[str, str]:
        """A daemon's settings: the defaults, our database and sandbox, generous bot limits."""
        return {"DATABASE_URL": database_url, "SANDBOX_URL": self.sandbox.url,
                "SERVER_KEYS": self.server_keys, "ADMIN_TOKEN": secrets.token_hex(16),
                "WEBHOOK_BOT_RATE_PER_S": "1000", "WEBHOOK_BOT_BURST": "1000",
                "SUPERVISOR_BACKOFF_BASE_MS": DEFAULTS["SUPERVISOR_BACKOFF_BASE_MS"]}

    def daemon(self, env: dict[str, str]) -> Daemon:
        """A started daemon."""
        return Daemon(env).start()

    @staticmethod
    def cli(daemon: Daemon, *args: str) -> dict[str, Any]:
        """One operator CLI command (`--json`); its last JSON line."""
        result = daemon.cli(*args, "--json")
        if result.returncode != 0:
            raise RuntimeError(f"CLI {args[:2]} failed: {result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def bot(self, daemon: Daemon) -> Bot:
        """A funded wallet and one SOL-PERP bot on it."""
        wallet = self.cli(daemon, "wallet", "create", "--fund", "1000")
        bot = self.cli(daemon, "bot", "create", "--wallet", wallet["wallet"], "--market",
                       "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        return Bot(bot["bot_id"], bot["webhook_secret"], wallet["agent_public_key"])

    def bots(self, daemon: Daemon, n: int) -> list[Bot]:
        """`n` independent bots, provisioned a few CLI commands at a time."""
        pool = gevent.pool.Pool(CLI_PARALLEL)
        return list(pool.imap(lambda _i: self.bot(daemon), range(n)))

    def fleet(self, daemon: Daemon, subscribers: int) -> tuple[Bot, list[Bot]]:
        """A published source bot and `subscribers` subscriber bots (each its own wallet)."""
        source = self.bot(daemon)
        self.cli(daemon, "bot", "publish", source.bot_id, "--profit-share-percent", "10")

        def subscribe(_i: int) -> Bot:
            wallet = self.cli(daemon, "wallet", "create", "--fund", "1000")
            sub = self.cli(daemon, "bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                           source.bot_id, "--capital-usd", "200")
            return Bot(sub["subscriber_bot_id"], "", wallet["agent_public_key"])

        pool = gevent.pool.Pool(CLI_PARALLEL)
        return source, list(pool.imap(subscribe, range(subscribers)))

    def close(self) -> None:
        """Stop the sandbox and the PostgreSQL."""
        self.sandbox.close()
        self.pg.close()


DEFAULTS = {s.name: s.default for s in SETTINGS}


def post(daemon: Daemon, bots: list[Bot], index: int, tag: str) -> Answer:
    """The next alert to bots[index]; what came back."""
    bot = bots[index]
    body = alert_body(f"{tag}-{index}", bot.sent)
    bot.sent += 1
    sent = time.monotonic()
    try:
        answer = requests.post(f"{daemon.url}/api/webhook/tradingview/{bot.bot_id}",
                               params={"secret": bot.secret}, json=body, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        return Answer(index, sent, None, None, error=type(exc).__name__)
    latency = time.monotonic() - sent
    try:
        parsed = answer.json()
    except ValueError:
        parsed = {}
    return Answer(index, sent, latency, answer.status_code, parsed if isinstance(parsed, dict)
                  else {})


class Stream:
    """Alerts paced open-loop at `rate`/s, round-robin over the bots, each POST in its own
    greenlet (a slow answer does not delay the next send), until stopped or `limit` sent."""

    def __init__(self, daemon: Daemon, bots: list[Bot], rate: float, tag: str,
                 limit: int | None = None) -> None:
        self.daemon, self.bots, self.rate, self.tag, self.limit = daemon, bots, rate, tag, limit
        self.answers: list[Answer] = []
        self._stop = False
        self._group = gevent.pool.Group()
        self._pacer = gevent.spawn(self._run)

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop and (self.limit is None or n < self.limit):
            gevent.sleep(max(0.0, start + n / self.rate - time.monotonic()))
            if self._stop:
                break
            index = n % len(self.bots)
            self._group.spawn(lambda i=index: self.answers.append(
                post(self.daemon, self.bots, i, self.tag)))
            n += 1

    def stop(self) -> list[Answer]:
        """Stop sending, wait for the answers in flight; every answer so far."""
        self._stop = True
        self._pacer.join()
        self._group.join(timeout=HTTP_TIMEOUT_S + 5)
        return self.answers

    def finish(self) -> list[Answer]:
        """Wait until `limit` alerts were sent and answered."""
        self._pacer.join()
        self._group.join(timeout=HTTP_TIMEOUT_S + 5)
        return self.answers


class Db:
    """The bench's own reads of a measurement's database (a connection per query, so a
    PostgreSQL restart in between does not matter)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last_trades: Counter[str] = Counter()

    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Run one query; its rows."""
        conn = psycopg2.connect(self.url, cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def statuses(self, ids: list[str]) -> dict[str, str]:
        """Signal id -> status."""
        return {r["id"]: r["status"] for r in self.rows(
            "SELECT id::text AS id, status FROM webhook_signals WHERE id::text = ANY(%s)",
            (ids,))}

    def wait_final(self, ids: list[str], timeout_s: float) -> dict[str, str]:
        """Wait until every signal is final (or the timeout); id -> status as it stands."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.statuses(ids)
            if (len(got) == len(set(ids)) and all(s in FINAL_STATUSES for s in got.values())) \
                    or time.monotonic() > deadline:
                return got
            gevent.sleep(0.25)

    def family_settled(self, source_id: str, bots: int) -> dict[str, str] | None:
        """The source signal and its copies, bot id -> status, once all `bots` are final and
        no retry job is open; None before."""
        rows = self.rows(
            "SELECT trading_bot_id::text AS bot, status, error FROM webhook_signals"
            " WHERE id::text = %(id)s OR parent_signal_id::text = %(id)s", {"id": source_id})
        jobs = self.rows("SELECT count(*) AS n FROM trade_retry_queue"
                         " WHERE status IN ('pending', 'running')")[0]["n"]
        if len(rows) == bots and jobs == 0 and all(r["status"] in FINAL_STATUSES for r in rows):
            self.last_trades = Counter(r["status"] for r in self.rows(
                "SELECT t.status FROM bot_trades t JOIN webhook_signals s ON s.id = t.signal_id"
                " WHERE s.id::text = %(id)s OR s.parent_signal_id::text = %(id)s",
                {"id": source_id}))
            return {r["bot"]: r["status"] for r in rows}
        return None


@contextlib.contextmanager
def running(lab: Lab, env: dict[str, str]) -> Iterator[list[Daemon]]:
    """Daemons started within (the first one started here) are stopped at the end."""
    daemons = [lab.daemon(env)]
    try:
        yield daemons
    finally:
        for d in daemons:
            with contextlib.suppress(Exception):
                d.stop()


def restart(lab: Lab, env: dict[str, str], old: Daemon) -> Daemon:
    """A new daemon on the old one's STATE_DIR (its journal and bot leases)."""
    return lab.daemon({**env, "STATE_DIR": old.env["STATE_DIR"]})


def fills_per_bot(lab: Lab, bots: list[Bot], since: float) -> list[int]:
    """Fills at the sandbox per bot since `since` (wall time)."""
    return [lab.sandbox.fills(b.authority, since) for b in bots]


# --- 1. kill -9 during a fan-out ---------------------------------------------------------------


def measure_kill(lab: Lab, args: argparse.Namespace) -> Row:
    """SIGKILL within a fan-out, restart, count each bot's fills: lost / doubled."""
    rng = random.Random(args.seed)
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    lost = doubled = 0
    settle: list[float] = []
    outcomes: Counter[str] = Counter()
    trades: Counter[str] = Counter()
    env["RETRY_LEASE_S"] = str(args.kill_retry_lease_s)
    with running(lab, env) as daemons:
        source, subs = lab.fleet(daemons[-1], args.subscribers)
        bots = [source, *subs]
        for trial in range(args.kill_trials):
            delay = rng.uniform(0, args.kill_max_delay_s)
            since = time.time()
            answer = post(daemons[-1], [source], 0, f"kill{trial}")
            if answer.status != 202:
                raise RuntimeError(f"trial {trial}: alert answered {answer.status}")
            gevent.sleep(delay)
            daemons[-1].kill()
            killed = time.monotonic()
            daemons.append(restart(lab, env, daemons[-1]))
            signal_id = str(answer.body["signal_id"])
            family = wait_until(lambda s=signal_id: db.family_settled(s, len(bots)),
                                "every signal of the trial final", args.wait_s)
            settle.append(time.monotonic() - killed)
            gevent.sleep(args.grace_s)  # a late fill of an order sent twice would show now
            fills = fills_per_bot(lab, bots, since)
            lost += sum(1 for f in fills if f == 0)
            doubled += sum(1 for f in fills if f > 1)
            outcomes.update(family.values())
            print(f"  kill trial {trial + 1}: SIGKILL {delay * 1000:.0f} ms after the 202;"
                  f" fills per bot {fills}; signals {dict(Counter(family.values()))},"
                  f" trade rows {dict(db.last_trades)};"
                  f" kill -> restarted and all final {fmt_s(settle[-1])}", flush=True)
            trades.update(db.last_trades)
            for d in daemons[:-1]:
                d.notify.close()
            del daemons[:-1]
    trials = args.kill_trials
    return Row("kill -9 within a fan-out, restart on the same STATE_DIR",
               f"{trials} trials x {len(bots)} bots",
               f"lost {lost}, doubled {doubled} (of {trials * len(bots)} bot orders);"
               f" signals {dict(outcomes)}, trade rows {dict(trades)}; kill -> all final and"
               f" reconciled (RETRY_LEASE_S={args.kill_retry_lease_s:g}): median"
               f" {fmt_s(statistics.median(settle))}, max {fmt_s(max(settle))}")


# --- 2. drain on SIGTERM under load ------------------------------------------------------------


def measure_drain(lab: Lab, args: argparse.Namespace) -> Row:
    """SIGTERM under a paced alert stream: time to exit, the drained-in line, non-202s."""
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    with running(lab, env) as daemons:
        first = daemons[0]
        bots = lab.bots(first, args.drain_bots)
        since = time.time()
        stream = Stream(first, bots, args.drain_rate, "drain")
        gevent.sleep(args.drain_after_s)
        assert first.process is not None
        terminated = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = first.process.wait(timeout=DEFAULTS_DRAIN_S + 60)
        exited = time.monotonic()
        answers = stream.stop()
        match = re.search(r"drained in ([\d.]+) s", first.log())
        during = [a for a in answers if terminated <= a.sent < exited]
        answered = [a for a in during if a.status is not None]
        not_202 = sum(1 for a in answered if a.status != 202)
        unanswered = len(during) - len(answered)
        before = [a for a in answers if a.sent < terminated]
        accepted = [a for a in answers if a.status == 202]
        daemons.append(restart(lab, env, first))
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        gevent.sleep(args.grace_s)
        per_bot = Counter(a.bot for a in accepted)
        fills = fills_per_bot(lab, bots, since)
        mismatched = sum(1 for i, f in enumerate(fills) if f != per_bot[i])
        done = sum(1 for s in final.values() if s == "done")
    errors = Counter(a.error for a in during if a.status is None)
    unanswered_from = min((a.sent - terminated for a in during if a.status is None),
                          default=None)
    print(f"    per bot accepted {[per_bot[i] for i in range(len(bots))]}, fills {fills};"
          f" no answer: {dict(errors)}, the first sent {fmt_s(unanswered_from)} after SIGTERM"
          f" (the process exited {fmt_s(exited - terminated)} after it)", flush=True)
    print(f"  drain: {len(before)} alerts sent before SIGTERM, {len(during)} during the drain"
          f" ({len(answered)} answered, {not_202} not 202, {unanswered} without an answer);"
          f" exit status {code}; after the restart {done}/{len(accepted)} accepted alerts done,"
          f" {mismatched} bots whose fills differ from their accepted alerts", flush=True)
    drained = f"{float(match.group(1)):.1f} s" if match else "no line"
    return Row(f"SIGTERM under {args.drain_rate:g} alerts/s ({args.drain_bots} bots, after"
               f" {args.drain_after_s:g} s)", f"{len(answers)} alerts",
               f"SIGTERM -> exit {fmt_s(exited - terminated)} (exit {code}; log: drained in"
               f" {drained}); during the drain {len(answered)} answered, {not_202} not 202,"
               f" {unanswered} unanswered; after restart {done}/{len(accepted)} done,"
               f" {mismatched} bots with fills != accepted")


DEFAULTS_DRAIN_S = float(DEFAULTS["DRAIN_TIMEOUT_S"])


# --- 3. time to ready after a PostgreSQL restart -----------------------------------------------


def ready(daemon: Daemon) -> int:
    """/readyz status (0 when it does not answer)."""
    try:
        return daemon.get("/readyz").status_code
    except requests.RequestException:
        return 0


def measure_pg_restart(lab: Lab, args: argparse.Namespace) -> Row:
    """Stop PostgreSQL, start it, time from the start command to /readyz 200."""
    url = lab.pg.database()
    env = lab.env(url)
    up: list[float] = []
    to_ready: list[float] = []
    with running(lab, env) as daemons:
        daemon = daemons[0]
        wait_until(lambda: ready(daemon) == 200, "ready before the first restart", args.wait_s)
        for trial in range(args.pg_restarts):
            lab.pg.stop()
            wait_until(lambda: ready(daemon) == 503, "/readyz 503 with PostgreSQL down",
                       args.wait_s)
            started = time.monotonic()
            lab.pg.start()
            up.append(time.monotonic() - started)
            wait_until(lambda: ready(daemon) == 200, "/readyz 200 again", args.wait_s)
            to_ready.append(time.monotonic() - started)
            print(f"  PostgreSQL restart {trial + 1}: start command -> accepting"
                  f" {fmt_s(up[-1])}, -> /readyz 200 {fmt_s(to_ready[-1])}", flush=True)
    return Row("PostgreSQL restart (pg_ctl stop -m fast, start): start -> /readyz 200",
               f"{len(to_ready)} restarts",
               f"median {fmt_s(statistics.median(to_ready))}, max {fmt_s(max(to_ready))}"
               f" (PostgreSQL itself accepting after {fmt_s(statistics.median(up))})")


# --- 4. a database outage ---------------------------------------------------------------------


def measure_outage(lab: Lab, args: argparse.Namespace) -> Row:
    """PostgreSQL down for --outage-s while alerts arrive: journaled, then executed."""
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    with running(lab, env) as daemons:
        daemon = daemons[0]
        bots = lab.bots(daemon, args.outage_bots)
        warm = [post(daemon, bots, i, "outage-warm") for i in range(len(bots))]
        db.wait_final([a.body["signal_id"] for a in warm], args.wait_s)
        since = time.time()
        lab.pg.stop()
        stopped = time.monotonic()
        stream = Stream(daemon, bots, args.outage_rate, "outage")
        gevent.sleep(max(0.0, stopped + args.outage_s - time.monotonic()))
        answers = stream.stop()
        lab.pg.start()
        back = time.monotonic()
        kinds = Counter(
            "202 journal" if a.status == 202 and a.body.get("queued") == "journal"
            else f"202 {a.body.get('status')}" if a.status == 202
            else "no answer" if a.status is None else str(a.status) for a in answers)
        accepted = [a for a in answers if a.status == 202]
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        executed = time.monotonic() - back
        gevent.sleep(args.grace_s)
        per_bot = Counter(a.bot for a in accepted)
        fills = fills_per_bot(lab, bots, since)
        fills_ok = sum(min(f, per_bot[i]) for i, f in enumerate(fills))
        extra = sum(max(0, f - per_bot[i]) for i, f in enumerate(fills))
        done = sum(1 for s in final.values() if s == "done")
        acks = [a.latency for a in answers if a.latency is not None]
    print(f"  outage: answers {dict(kinds)}; ack p50 {fmt_s(pct(acks, 50))}, p99"
          f" {fmt_s(pct(acks, 99))}; start -> all final {fmt_s(executed)};"
          f" statuses {dict(Counter(final.values()))}; fills per bot {fills}", flush=True)
    other = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()) if k != "202 journal")
    return Row(f"PostgreSQL down {args.outage_s:g} s, alerts at {args.outage_rate:g}/s",
               f"{len(answers)} sent",
               f"202 journal {kinds['202 journal']}; other answers: {other or 'none'};"
               f" done {done}/{len(accepted)}, filled once {fills_ok}, extra fills {extra};"
               f" start -> all final {fmt_s(executed)}")


# --- 5. webhook ack latency under load -------------------------------------------------------


def measure_ack(lab: Lab, args: argparse.Namespace) -> Row:
    """Client-side ack latency of alerts paced at --ack-rate while they execute."""
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    with running(lab, env) as daemons:
        daemon = daemons[0]
        bots = lab.bots(daemon, args.ack_bots)
        for _ in range(2):  # warm-up: every bot actor started, every account read once
            warm = [post(daemon, bots, i, "ack-warm") for i in range(len(bots))]
            db.wait_final([a.body["signal_id"] for a in warm], args.wait_s)
        stream = Stream(daemon, bots, args.ack_rate, "ack", limit=round(args.ack_rate * args.ack_s))
        answers = stream.finish()
        last = time.monotonic()
        accepted = [a for a in answers if a.status == 202]
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        final_in = time.monotonic() - last
    acks = [a.latency for a in answers if a.latency is not None]
    statuses = Counter(a.status for a in answers)
    done = sum(1 for s in final.values() if s in FINAL_STATUSES)
    print(f"  ack: statuses {dict(statuses)}; p50 {fmt_s(pct(acks, 50))}, p99"
          f" {fmt_s(pct(acks, 99))}, max {fmt_s(max(acks, default=None))}; final"
          f" {done}/{len(accepted)} ({dict(Counter(final.values()))}) {fmt_s(final_in)} after"
          " the last send", flush=True)
    return Row(f"webhook ack at {args.ack_rate:g} alerts/s for {args.ack_s:g} s"
               f" ({args.ack_bots} bots)", f"{len(answers)} alerts",
               f"p50 {fmt_s(pct(acks, 50))}, p99 {fmt_s(pct(acks, 99))}, max"
               f" {fmt_s(max(acks, default=None))}; 202: {statuses[202]}; final {done}/"
               f"{len(accepted)} {fmt_s(final_in)} after the last send")


MEASURES: dict[str, Callable[[Lab, argparse.Namespace], Row]] = {
    "kill": measure_kill, "drain": measure_drain, "pg-restart": measure_pg_restart,
    "outage": measure_outage, "ack": measure_ack}


def parse() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(MEASURES), action="append",
                   help="run only this measurement (repeatable; default all)")
    p.add_argument("--seed", type=int, default=7, help="sandbox seed and kill-delay RNG seed")
    p.add_argument("--slot-ms", type=int, default=400, help="sandbox slot time")
    p.add_argument("--rpc-latency-ms", type=int, default=40, help="added to each JSON-RPC call")
    p.add_argument("--rpc-rps-limit", type=int, default=50, help="JSON-RPC calls/s (0: none)")
    p.add_argument("--swift-latency-ms", type=int, default=30, help="added to each Swift call")
    p.add_argument("--fill-profile", choices=("edge", "v3"), default="v3")
    p.add_argument("--kill-trials", type=int, default=5)
    p.add_argument("--subscribers", type=int, default=5, help="copies in the kill trials")
    p.add_argument("--kill-max-delay-s", type=float, default=2.0)
    p.add_argument("--kill-retry-lease-s", type=float, default=30.0,
                   help="RETRY_LEASE_S in the kill trials (the daemon's default is "
                        f"{DEFAULTS['RETRY_LEASE_S']}): an order a crash left pending is "
                        "reconciled one lease after the restart")
    p.add_argument("--drain-rate", type=float, default=50.0)
    p.add_argument("--drain-bots", type=int, default=10)
    p.add_argument("--drain-after-s", type=float, default=5.0)
    p.add_argument("--pg-restarts", type=int, default=3)
    p.add_argument("--outage-s", type=float, default=30.0)
    p.add_argument("--outage-rate", type=float, default=2.0)
    p.add_argument("--outage-bots", type=int, default=4)
    p.add_argument("--ack-rate", type=float, default=100.0)
    p.add_argument("--ack-s", type=float, default=10.0)
    p.add_argument("--ack-bots", type=int, default=20)
    p.add_argument("--wait-s", type=float, default=180.0, help="longest wait for signals")
    p.add_argument("--grace-s", type=float, default=2.0,
                   help="wait after signals are final before counting fills")
    return p.parse_args()


def main() -> None:
    """Parse, measure, print the table."""
    args = parse()
    for name in DEFAULTS:  # every daemon setting its default unless the bench sets it
        os.environ.pop(name, None)
    command = shlex.join([".venv/bin/python", "bench/resilience_bench.py", *sys.argv[1:]])
    print(f"$ {command}", flush=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
          flush=True)
    lab = Lab(args)
    print("sandbox: " + " ".join(lab.sandbox.argv[3:]), flush=True)
    rows = []
    try:
        for name, fn in MEASURES.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            print(f"{name} ...", flush=True)
            try:
                rows.append(fn(lab, args))
            except Exception as exc:  # one failed measurement still leaves the others' rows
                rows.append(Row(name, "-", f"did not complete: {type(exc).__name__}: {exc}"))
                print(f"  {name} failed: {exc!r}", flush=True)
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        lab.close()
    print(f"\n$ {command}\n")
    print("| measure | n | result |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row.measure} | {row.n} | {row.result} |")


if __name__ == "__main__":
    main()
