"""The alerts a scale bench sends and what became of them: open-loop sends, acks, final rows."""

# Imported by bench/scale_bench.py once it has put the repository root on sys.path and patched
# gevent.
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import gevent
import gevent.pool
import requests
from resilience_bench import Bot, Lab, alert_body, fmt_s, pct, wait_until

from storage.database import Database
from storage.signals import SignalWaiter
from tests.e2e import rawhttp

EXECUTE_WAIT_S = 300.0  # longest wait for a measure's alerts to be final
JOURNAL_WAIT_S = 30.0  # for journaled alerts to be committed (replayed every second)
JSON = [(b"Content-Type", b"application/json")]


@dataclass
class Sent:
    """One alert as the client saw it (monotonic times)."""

    due: float
    answered: float
    status: int  # 0: no HTTP answer
    body: dict[str, Any]

    @property
    def signal_id(self) -> str | None:
        """The id a 202 answered."""
        return self.body.get("signal_id") if self.status == 202 else None

    @property
    def journaled(self) -> bool:
        """Answered from the local journal (the database was slow or unreachable)."""
        return self.body.get("queued") == "journal"


@dataclass
class Executed:
    """What became of a measure's alerts."""

    took: float | None  # from the measure's start or last send until all were final
    final: Counter[str]  # statuses of the alerts' rows
    journaled: int
    missing: int  # ids answered in a 202 that never appeared in webhook_signals
    no_order: int  # final without a trade row: each alert here should trade once
    not_202: Counter[int]

    def __str__(self) -> str:
        parts = [", ".join(f"{n} {status}" for status, n in self.final.most_common())]
        if self.not_202:
            parts.append(f"{sum(self.not_202.values())} not 202 {dict(self.not_202)}")
        if self.journaled:
            parts.append(f"{self.journaled} journaled")
        if self.missing:
            parts.append(f"{self.missing} answered ids never in the database")
        if self.no_order:
            parts.append(f"{self.no_order} without an order")
        return f"{fmt_s(self.took)} ({'; '.join(parts)})"



# --- alerts --------------------------------------------------------------------------------


def send(address: tuple[str, int], bot: Bot) -> tuple[int, dict[str, Any]]:
    """The bot's next alert (opens when its alerts so far are even, else closes), on a new
    connection; the status (0: no answer) and the JSON answer."""
    body = json.dumps(alert_body(bot.bot_id, bot.sent)).encode()
    bot.sent += 1
    target = f"/api/webhook/tradingview/{bot.bot_id}?secret={quote(bot.secret)}".encode()
    try:
        answer = rawhttp.request(address, "POST", target, JSON, body)
    except OSError:
        return 0, {}
    try:
        parsed = answer.json()
    except ValueError:
        parsed = {}
    return answer.status, parsed if isinstance(parsed, dict) else {}


def accepted(address: tuple[str, int], bot: Bot) -> str:
    """Send the bot's next alert; the signal id of its 202 (anything else raises)."""
    status, answer = send(address, bot)
    if status != 202:
        raise RuntimeError(f"alert to {bot.bot_id} answered {status}: {answer}")
    return str(answer["signal_id"])


def fire(address: tuple[str, int], bots: list[Bot], due: list[float]) -> list[Sent]:
    """Open loop: bots[i]'s alert leaves at monotonic due[i] in its own greenlet, whether or
    not earlier ones were answered."""
    group = gevent.pool.Group()
    sent: list[Sent] = []

    def one(bot: Bot, at: float) -> None:
        status, answer = send(address, bot)
        sent.append(Sent(at, time.monotonic(), status, answer))

    for bot, at in zip(bots, due, strict=True):
        gevent.sleep(max(0.0, at - time.monotonic()))
        group.spawn(one, bot, at)
    group.join(timeout=rawhttp.TIMEOUT_S * 3)
    return sent


def executed(db: Database, waiter: SignalWaiter, sent: list[Sent], since: float) -> Executed:
    """Wait until every answered alert is final: the journaled ones once the replay committed
    them (given JOURNAL_WAIT_S: an id it never commits, say as a duplicate of a row the slow
    insert did commit, counts as missing); what became of all, `took` from `since` (wall
    time) to the last processed_at."""
    ids = [s.signal_id for s in sent if s.signal_id]
    journaled = [s.signal_id for s in sent if s.signal_id and s.journaled]

    def stored() -> list[str]:
        return [r["id"] for r in db.fetchall(
            "SELECT id FROM webhook_signals WHERE id = ANY(%s)", (ids,))]

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: len(stored()) == len(ids), "journaled alerts committed",
                   JOURNAL_WAIT_S)
    final = False
    with contextlib.suppress(TimeoutError):
        waiter.wait(stored(), EXECUTE_WAIT_S)
        final = True
    rows = db.fetchall(
        "SELECT status, extract(epoch FROM processed_at) AS done_at,"
        " EXISTS (SELECT 1 FROM bot_trades t WHERE t.signal_id = s.id) AS traded"
        " FROM webhook_signals s WHERE id = ANY(%s)", (ids,))
    took = max(float(r["done_at"]) for r in rows) - since if final and rows else None
    return Executed(took, Counter(r["status"] for r in rows), len(journaled),
                    len(ids) - len(rows), sum(1 for r in rows if not r["traded"]),
                    Counter(s.status for s in sent if s.status != 202))


def resync(lab: Lab, bots: list[Bot]) -> list[Bot]:
    """Make each bot's next alert the one that trades against what the venue holds: a close
    while it has a position, else an open (alerts of a bot executed out of their sending
    order leave it otherwise: Executed.no_order); said when any needed it."""
    fixed = 0
    for bot in bots:
        answer = requests.get(f"{lab.sandbox.url}/sandbox/user",
                              params={"authority": bot.authority}, timeout=10)
        answer.raise_for_status()
        holding = any(int(p["base_asset_amount"]) for p in answer.json().get("positions", []))
        if holding != (bot.sent % 2 == 1):
            bot.sent += 1
            fixed += 1
    if fixed:
        print(f"  {fixed} bot(s) held other than their alerts said: next alert flipped",
              flush=True)
    return bots


def latencies(sent: list[Sent], since: float | None = None) -> list[float]:
    """Seconds from each alert's due time (or `since`) to its answer."""
    return [s.answered - (s.due if since is None else since) for s in sent if s.status]


def spread_of(values: list[float], max_too: bool = True) -> str:
    """p50 / p99 (/ max) in readable units."""
    parts = [fmt_s(pct(values, 50)), fmt_s(pct(values, 99))]
    return " / ".join([*parts, fmt_s(max(values, default=None))] if max_too else parts)
