"""kill -9 of the daemon at each point of a fan-out where a crash can leave work half done, then a
restart: every bot (the source and each subscriber) ends with exactly the orders its signals
call for, counted at the sandbox, none lost, none sent twice, and every row settled.

Each kill point is held from outside, with the sandbox's knobs, and the daemon is killed once
the database and the sandbox show the state; the test then checks that the state really was
the one it meant to kill in:

- before_copies: the source signal is claimed, its market snapshot read is held by RPC latency,
  so no copy exists yet;
- copies_claimed: every copy is claimed, held on its account read (RPC latency), no trade row;
- in_flight: every bot's trade row pending: the first Swift POSTs (SWIFT_MAX_IN_FLIGHT) at the
  sandbox, unanswered (Swift latency; the sandbox processes them after the daemon died), the
  other orders queued behind them in the gateway;
- retry_in_auction: after in_flight, the orders that never left are sent again by their retry
  jobs, and the daemon is killed again while those retries' auctions run (no maker bids);
- fill_tracking: every Swift order is accepted and its auction runs with no maker bids for
  these takers (the makers come back once the daemon is dead, within the auction);
- flip: every bot holds a long and is sent a short; its close filled, its open not yet sent
  (makers held until the closes are accepted, then RPC latency holds the reads between the two
  halves);
- flip_close_in_flight: as flip, but killed while the closes are out (the first on the wire,
  the others queued): each close is reconciled, then the flip's open goes out;
- stale: copies claimed as above, restarted with SIGNAL_STALE_S shorter than the signal's age:
  the open fails with that reason (as `signal show` tells), while a close interrupted before
  its copies exist runs all the same.

Orders are counted per agent at the sandbox (Swift orders and transactions received, profit-share
withdrawals aside), and every bot's position must end on the expected side.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

import runtime
from sandbox.server import SandboxServer
from storage.database import Database
from storage.notify import Listener
from storage.retry_queue import SETTLED_CHANNEL
from storage.signals import FINAL_STATUSES, FINISHED_CHANNEL
from tests.daemon import Daemon, key_file
from tests.e2e.stack import environment
from tests.venue_view import orders_received, position

T = TypeVar("T")

SUBSCRIBERS = 3
SLOT_MS = 100
AUCTION_SLOTS = 60  # 6 s: an auction outlives the kill (and HOLD_MS), so its order still fills
HOLD_MS = 2500  # venue latency that holds a state: long enough to see it and kill in it
WAIT_S = 60.0
OPEN_LONG = b"order buy @ 1 filled on SOLUSD. New strategy position is 1"
FLIP_SHORT = b"order sell @ 2 filled on SOLUSD. New strategy position is -1"
CLOSE = b"order sell @ 1 filled on SOLUSD. New strategy position is 0"
OPEN_SHORT = b"order sell @ 1 filled on SOLUSD. New strategy position is -1"
IN_FLIGHT = 2  # SWIFT_MAX_IN_FLIGHT: the in_flight point has orders on the wire and queued


@dataclass(frozen=True)
class Fleet:
    """A published source bot and its subscribers; `agents[0]` is the source's."""

    source_bot: str
    secret: str
    bots: list[str]
    agents: list[str]


class Crash:
    """One sandbox, one database, one fleet, and the daemon that is killed and restarted."""

    def __init__(self, database_url: str, sandbox: SandboxServer, tmp_path: Path) -> None:
        key = key_file(tmp_path / "server.key")
        self.sandbox = sandbox
        self.env = {
            "DATABASE_URL": database_url, "SANDBOX_URL": sandbox.url,
            "RPC_BACKUP_URL": sandbox.backup_rpc_url, "SERVER_KEYS": f"k1=file:{key}",
            "ADMIN_TOKEN": "crash" * 7, "AUCTION_DURATION_SLOTS": str(AUCTION_SLOTS),
            "RETRY_LEASE_S": "4", "RETRY_TICK_MS": "200", "EXECUTION_BUDGET_MS": "20000",
            "SWIFT_MAX_IN_FLIGHT": str(IN_FLIGHT)}
        self.daemon = Daemon(self.env).start()
        self.db = Database(database_url, size=2)
        self.listener = Listener(database_url, FINISHED_CHANNEL, SETTLED_CHANNEL)
        self.fleet = self._provision()

    def cli(self, *args: str) -> dict[str, Any]:
        """One operator CLI command, in-process (as tests/e2e do), with the daemon's settings."""
        out = io.StringIO()
        with environment(self.daemon.env), contextlib.redirect_stdout(out):
            code = runtime.main([*args, "--json"])
        assert code == 0, (args, out.getvalue())
        return json.loads(out.getvalue().strip().splitlines()[-1])

    def _provision(self) -> Fleet:
        creator = self.cli("wallet", "create")
        source = self.cli("bot", "create", "--wallet", creator["wallet"], "--market",
                           "SOL-PERP", "--leverage", "5", "--max-position-usd", "300")
        self.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
        bots, agents = [source["bot_id"]], [creator["agent_public_key"]]
        for _ in range(SUBSCRIBERS):
            wallet = self.cli("wallet", "create")
            sub = self.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                            source["bot_id"], "--capital-usd", "200")
            bots.append(sub["subscriber_bot_id"])
            agents.append(wallet["agent_public_key"])
        return Fleet(source["bot_id"], source["webhook_secret"], bots, agents)

    def close(self) -> None:
        """Stop the daemon (if it runs) and close the connections."""
        self.listener.close()
        self.db.close()
        self.daemon.stop()

    # --- the venue -----------------------------------------------------------------------------

    def faults(self, **knobs: Any) -> None:
        """Change sandbox faults (the others stay as they are)."""
        answer = requests.post(f"{self.sandbox.url}/sandbox/faults", json=knobs, timeout=5)
        assert answer.status_code == 200, answer.text

    def posts(self, since: float) -> dict[str, list[int | None]]:
        """Swift POSTs of the fleet since `since`, per agent: their HTTP status (None while the
        request is in flight)."""
        posts = requests.get(f"{self.sandbox.url}/sandbox/swift-posts", params={"since": since},
                             timeout=5).json()["posts"]
        return {agent: [p["status"] for p in posts if p["authority"] == agent]
                for agent in self.fleet.agents}

    def orders_at_venue(self, agent: str) -> int:
        """Orders the sandbox received from this agent (tests.venue_view)."""
        return orders_received(self.sandbox.url, agent)

    def position(self, agent: str) -> int:
        """The agent's SOL-PERP base position at the sandbox (0 when none)."""
        return position(self.sandbox.url, agent)

    def until(self, check: Callable[[], T | None], what: str) -> T:
        """`check()` again at every slot of the sandbox until it returns something other than
        None; TimeoutError after WAIT_S naming `what`."""
        clock = self.sandbox.exchange.clock
        deadline = time.monotonic() + WAIT_S
        while (result := check()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached in {WAIT_S}s")
            clock.wait_for_slot(clock.slot + 1, WAIT_S)
        return result

    # --- signals -------------------------------------------------------------------------------

    def alert(self, body: bytes) -> str:
        """A TradingView alert to the source bot; its signal id."""
        answer = requests.post(
            f"{self.daemon.url}/api/webhook/tradingview/{self.fleet.source_bot}", timeout=10,
            params={"secret": self.fleet.secret}, data=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["signal_id"])

    def family(self, signal_id: str) -> dict[str, dict[str, Any]]:
        """The source signal and its copies, by bot: {status, trades: [...]}."""
        rows = self.db.fetchall(
            "SELECT id, trading_bot_id, status FROM webhook_signals"
            " WHERE id = %(id)s OR parent_signal_id = %(id)s", {"id": signal_id})
        trades = self.db.fetchall(
            "SELECT signal_id, reduce_only, status FROM bot_trades WHERE signal_id = ANY(%s)"
            " ORDER BY created_at", ([r["id"] for r in rows],))
        return {r["trading_bot_id"]: {"status": r["status"], "trades": [
            t for t in trades if t["signal_id"] == r["id"]]} for r in rows}

    def wait_settled(self, *signal_ids: str) -> dict[str, dict[str, Any]]:
        """Wait until every signal and copy is final and no retry job is open; their families."""

        def settled(cur: Any) -> bool | None:
            cur.execute("SELECT count(*) AS n, count(*) FILTER (WHERE status <> ALL(%(final)s))"
                        " AS open FROM webhook_signals WHERE parent_signal_id = ANY(%(ids)s)"
                        " OR id = ANY(%(ids)s)",
                        {"ids": list(signal_ids), "final": list(FINAL_STATUSES)})
            signals = cur.fetchone()
            cur.execute("SELECT count(*) AS n FROM trade_retry_queue"
                        " WHERE status IN ('pending', 'running')")
            jobs = cur.fetchone()["n"]
            every = len(signal_ids) * len(self.fleet.bots)
            return True if signals["n"] == every and signals["open"] == 0 and jobs == 0 else None

        self.listener.wait_until(settled, WAIT_S, "every signal and retry job settled")
        return {signal_id: self.family(signal_id) for signal_id in signal_ids}

    # --- the crash -----------------------------------------------------------------------------

    def restart(self, faults: dict[str, Any] | None = None, **settings: str) -> None:
        """Back to a healthy venue (but for `faults`), and the daemon started again (with
        `settings`) on the same state directory (its bot leases come back at once)."""
        requests.post(f"{self.sandbox.url}/sandbox/faults", json={"clear": True, **(faults or {})},
                      timeout=5).raise_for_status()
        self.daemon.stop()
        self.daemon = Daemon({**self.env, "STATE_DIR": self.daemon.env["STATE_DIR"], **settings})
        self.daemon.start()


# --- the kill points: each holds its state, kills in it, restarts; returns the signals sent -----


def settled_first(crash: Crash, body: bytes) -> str:
    """A signal run to its end before the crash (a position to flip or close)."""
    signal_id = crash.alert(body)
    crash.wait_settled(signal_id)
    return signal_id


def accepted_by_all(crash: Crash, since: float) -> bool | None:
    """Every bot's Swift order since `since` is accepted (one POST each, answered 200)."""
    return True if all(s == [200] for s in crash.posts(since).values()) else None


def held_on_account_reads(crash: Crash, body: bytes) -> str:
    """Kill once every copy of a new signal is claimed and held on its account read (RPC
    latency), none with a trade row; the signal's id. Only for the fleet's first signal after a
    start: later, the account read after a bot's last order is served from the daemon's cache."""
    crash.faults(rpc_latency_ms=HOLD_MS)
    signal_id = crash.alert(body)
    subscribers = crash.fleet.bots[1:]

    def copies(family: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [family.get(bot, {"status": None, "trades": []}) for bot in subscribers]

    claimed = [{"status": "processing", "trades": []}] * SUBSCRIBERS
    crash.until(lambda: True if copies(crash.family(signal_id)) == claimed else None,
                "every copy claimed, none with a trade row")
    crash.daemon.kill()
    assert copies(crash.family(signal_id)) == claimed, "not killed in the state"
    return signal_id


def held_before_copies(crash: Crash, body: bytes) -> str:
    """Kill once the source signal of a new alert is claimed and held on its market snapshot
    read (RPC latency), before any copy exists; the signal's id."""
    crash.faults(rpc_latency_ms=HOLD_MS)
    signal_id = crash.alert(body)
    claimed = {crash.fleet.source_bot: {"status": "processing", "trades": []}}
    crash.until(lambda: True if crash.family(signal_id) == claimed else None,
                "the source signal claimed, no copy made")
    crash.daemon.kill()
    assert crash.family(signal_id) == claimed, "not killed in the state"
    return signal_id


def before_copies(crash: Crash) -> list[str]:
    signal_id = held_before_copies(crash, OPEN_LONG)
    crash.restart()
    return [signal_id]


def copies_claimed(crash: Crash) -> list[str]:
    signal_id = held_on_account_reads(crash, OPEN_LONG)
    crash.restart()
    return [signal_id]


def held_in_flight(crash: Crash) -> tuple[str, list[str]]:
    """Kill once a new signal's first IN_FLIGHT Swift POSTs are on the wire (Swift latency),
    the other orders queued behind them in the gateway, every trade row pending; the signal's
    id and the agents whose orders never left."""
    crash.faults(swift_latency_ms=HOLD_MS)
    since = time.time()
    signal_id = crash.alert(OPEN_LONG)

    def held() -> list[str] | None:
        family = crash.family(signal_id)
        trades = [[t["status"] for t in family[bot]["trades"]] if bot in family else []
                  for bot in crash.fleet.bots]
        posts = crash.posts(since)
        sent = [status for statuses in posts.values() for status in statuses]
        every = trades == [["pending"]] * len(crash.fleet.bots)
        return [a for a, s in posts.items() if not s] if every and sent == [
            None] * IN_FLIGHT else None

    crash.until(held, f"every trade row pending, {IN_FLIGHT} Swift POSTs unanswered")
    crash.daemon.kill()
    queued = held()
    assert queued, "not killed in the state"
    return signal_id, queued


def in_flight(crash: Crash) -> list[str]:
    signal_id, _ = held_in_flight(crash)
    crash.restart()  # the sandbox answers the POSTs on the wire after the kill
    return [signal_id]


def retry_in_auction(crash: Crash) -> list[str]:
    """After in_flight, the orders that never left are sent again by their retry jobs: killed
    again while those retries' Swift auctions run (no maker bids for them until the kill)."""
    signal_id, queued = held_in_flight(crash)
    since = time.time()
    crash.restart({"swift_makers_paused_for": ",".join(queued)})

    def accepted() -> bool | None:
        posts = crash.posts(since)
        return True if all(posts[agent] == [200] for agent in queued) else None

    crash.until(accepted, "the retries' Swift orders accepted")
    crash.daemon.kill()
    assert [crash.position(agent) for agent in queued] == [0] * len(queued), (
        "a retry's auction ended before the kill")
    crash.restart()  # the makers come back while the auctions still run
    return [signal_id]


def fill_tracking(crash: Crash) -> list[str]:
    crash.faults(swift_makers_paused_for=",".join(crash.fleet.agents))
    since = time.time()
    signal_id = crash.alert(OPEN_LONG)
    crash.until(lambda: accepted_by_all(crash, since), "every bot's Swift order accepted")
    crash.daemon.kill()
    assert [crash.position(agent) for agent in crash.fleet.agents] == [0] * len(
        crash.fleet.agents), "an auction ended before the kill"
    family = crash.family(signal_id)
    assert [[t["status"] for t in family[bot]["trades"]] for bot in crash.fleet.bots] == [
        ["pending"]] * len(crash.fleet.bots), "not killed in the state"
    crash.restart()  # the makers come back while the auctions still run
    return [signal_id]


def flip(crash: Crash) -> list[str]:
    opened = settled_first(crash, OPEN_LONG)
    crash.faults(swift_makers_paused_for=",".join(crash.fleet.agents))
    since = time.time()
    signal_id = crash.alert(FLIP_SHORT)
    crash.until(lambda: accepted_by_all(crash, since), "every bot's close accepted")
    crash.faults(rpc_latency_ms=HOLD_MS)  # the reads after the closes fill are held...
    crash.faults(swift_makers_paused_for="")  # ...and the closes fill

    def halves() -> list[tuple[str, list[tuple[bool, str]]]]:
        family = crash.family(signal_id)
        return [(family[bot]["status"], [(t["reduce_only"], t["status"]) for t in family[bot][
            "trades"]]) if bot in family else ("", []) for bot in crash.fleet.bots]

    between = [("processing", [(True, "completed")])] * len(crash.fleet.bots)
    crash.until(lambda: True if halves() == between else None,
                "every close filled, no open sent")
    crash.daemon.kill()
    assert halves() == between, "not killed in the state"
    crash.restart()
    return [opened, signal_id]


def flip_close_in_flight(crash: Crash) -> list[str]:
    """As flip, but killed while the closes are out (in_flight's state: the first on the wire,
    the others queued): each close is reconciled, then the flip's open goes out."""
    opened = settled_first(crash, OPEN_LONG)
    crash.faults(swift_latency_ms=HOLD_MS)
    since = time.time()
    signal_id = crash.alert(FLIP_SHORT)

    def held() -> bool | None:
        family = crash.family(signal_id)
        trades = [[(t["reduce_only"], t["status"]) for t in family[bot]["trades"]]
                  if bot in family else [] for bot in crash.fleet.bots]
        sent = [status for statuses in crash.posts(since).values() for status in statuses]
        every = trades == [[(True, "pending")]] * len(crash.fleet.bots)
        return True if every and sent == [None] * IN_FLIGHT else None

    crash.until(held, f"every close pending, {IN_FLIGHT} of them at the sandbox unanswered")
    crash.daemon.kill()
    assert held(), "not killed in the state"
    crash.restart()
    return [opened, signal_id]


def stale(crash: Crash) -> list[str]:
    """Interrupted before any order left, and older than SIGNAL_STALE_S at the restart: an open
    fails with that reason, a close runs all the same."""
    too_old = held_on_account_reads(crash, OPEN_SHORT)
    crash.restart(SIGNAL_STALE_S="1")  # it waited HOLD_MS on its reads before the kill
    crash.wait_settled(too_old)
    story = crash.cli("signal", "show", too_old)
    for signal in (story, *story["subscribers"]):
        assert signal["status"] == "failed", story
        assert "stale" in signal["status_reason"], story
        assert "SIGNAL_STALE_S=1" in signal["status_reason"], story
    opened = settled_first(crash, OPEN_LONG)
    closed = held_before_copies(crash, CLOSE)
    crash.restart(SIGNAL_STALE_S="1")
    return [too_old, opened, closed]


@dataclass(frozen=True)
class KillPoint:
    """How to reach a kill point (and restart after it), and what each bot must have sent."""

    run: Callable[[Crash], list[str]]
    orders_per_bot: tuple[int, ...]  # per signal sent: the orders each bot sends for it
    final_side: int  # the sign of every bot's position at the end


KILL_POINTS = {
    "before_copies": KillPoint(before_copies, (1,), 1),
    "copies_claimed": KillPoint(copies_claimed, (1,), 1),
    "in_flight": KillPoint(in_flight, (1,), 1),
    "fill_tracking": KillPoint(fill_tracking, (1,), 1),
    "retry_in_auction": KillPoint(retry_in_auction, (1,), 1),
    "flip": KillPoint(flip, (1, 2), -1),  # the open, then the flip's close and its open
    "flip_close_in_flight": KillPoint(flip_close_in_flight, (1, 2), -1),
    "stale": KillPoint(stale, (0, 1, 1), 0),  # a stale open: nothing; an open and its close
}


@pytest.fixture
def crash(database_url: str, tmp_path: Path) -> Iterator[Crash]:
    sandbox = SandboxServer("127.0.0.1", 0, seed=5, slot_ms=SLOT_MS)
    sandbox.start()
    crash = None
    try:
        crash = Crash(database_url, sandbox, tmp_path)
        yield crash
    finally:
        if crash is not None:
            crash.close()
        sandbox.stop()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_at_each_point_of_a_fanout_loses_and_doubles_nothing(crash: Crash,
                                                                     point: str) -> None:
    kill_point = KILL_POINTS[point]
    signal_ids = kill_point.run(crash)
    families = crash.wait_settled(*signal_ids)
    bots = crash.fleet.bots
    assert len(signal_ids) == len(kill_point.orders_per_bot)
    assert not [t for family in families.values() for bot in bots for t in family[bot]["trades"]
                if t["status"] == "pending"], families
    expected = sum(kill_point.orders_per_bot)
    assert [crash.orders_at_venue(agent) for agent in crash.fleet.agents] == [
        expected] * len(bots)
    assert [(crash.position(agent) > 0) - (crash.position(agent) < 0)
            for agent in crash.fleet.agents] == [kill_point.final_side] * len(bots)
