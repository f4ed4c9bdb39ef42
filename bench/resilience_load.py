"""The alerts a resilience bench sends and what it reads back: answers, paced streams, signals.

Imported by bench/resilience_bench.py, which puts the repository root on sys.path (and patches
gevent) before it imports it.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.pool
import psycopg2
import psycopg2.extras
import requests
from resilience_lab import HTTP_TIMEOUT_S, Bot

from storage.signals import FINAL_STATUSES
from tests.daemon import Daemon


def alert_body(tag: str, n: int) -> dict[str, str]:
    """The n-th alert of a bot (n from 0): even opens one contract, odd closes it."""
    opening = n % 2 == 0
    return {"action": "buy" if opening else "sell", "contracts": "1",
            "position_size": "1" if opening else "0", "order_id": f"{tag}-{n}"}


@dataclass
class Answer:
    """One webhook POST as the client saw it."""

    bot: int
    sent: float  # time.monotonic() when the request left
    latency: float | None  # None: no HTTP answer (refused, reset, timeout)
    status: int | None
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


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
