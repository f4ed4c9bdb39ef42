"""Profit sharing end to end: real PostgreSQL, real sandbox chain, real tree, real CLI.

The tree is the daemon's, with the `profit_share` child given a fast IOU schedule (and, in
some tests, a payer that fails on purpose); a subscriber's profitable close pays its creator on
chain. Balances are read from the sandbox.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from driftpy.addresses import get_user_account_public_key
from greenlet import GreenletExit
from solders.hash import Hash
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from actors.messages import SubscriberClosed
from actors.profit_share import ProfitShareActor
from actors.profit_share_payment import ExecutorPayer
from actors.services import Services
from storage.profit_shares import ShareWaiter, share_for_trade
from supervision import ChildSpec, CrashDrill, request, whereis
from tests.e2e.stack import Changes, Stack
from trading.profit_share import IouSchedule
from venue.legacy_tx import BuiltTx
from venue.positions import read_user
from venue.rpc_client import RpcError, SolanaRpc
from venue.tx_sender import SentTx
from venue.tx_status import TxState

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"
CLOSE_LONG = "order sell @ 1 filled on SOLUSD. New strategy position is 0"
WAIT_S = 60.0
FAST = IouSchedule(interval_s=0.2, max_attempts=50, ttl_s=3600)


ActorKwargs = Callable[[Services], dict[str, Any]]


def fast_profit_share(extra: ActorKwargs) -> Changes:
    """The tree with a profit_share actor on a fast schedule (plus `extra` kwargs)."""

    def changes(services: Services) -> dict[str, ChildSpec | None]:
        return {"profit_share": ChildSpec("profit_share", ProfitShareActor, kwargs={
            "services": services, "schedule": FAST, "tick_s": 0.2, "lease_s": 1.0,
            **extra(services)})}

    return changes


@pytest.fixture
def stack(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack whose profit_share actor runs a fast schedule (and the test's param kwargs)."""
    extra: ActorKwargs = getattr(request, "param", lambda _s: {})
    with Stack(database_url, tmp_path, changes=fast_profit_share(extra)) as running:
        yield running


# --- helpers -----------------------------------------------------------------------------------


def copy_trading(stack: Stack, percent: str = "10") -> tuple[dict[str, Any], dict[str, Any]]:
    """A published source bot and one subscriber bot: (source, follower)."""
    source = stack.new_bot(max_usd="300")
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", percent)
    wallet = stack.cli("wallet", "create", "--fund", "1000")
    sub = stack.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to", source["bot_id"],
                    "--capital-usd", "200")
    return source, {"wallet": wallet["wallet"], "agent": wallet["agent_public_key"],
                    "bot_id": sub["subscriber_bot_id"]}


def oracle(stack: Stack, price: int) -> None:
    """Pin SOL-PERP's oracle (whole dollars)."""
    response = requests.post(f"{stack.sandbox.url}/sandbox/oracle", timeout=5,
                             json={"market_index": 0, "price": price, "freeze": True})
    assert response.status_code == 200, response.text


def run_alert(stack: Stack, source: dict[str, Any], follower: dict[str, Any],
              body: str) -> dict[str, Any]:
    """Fire an alert at the source; wait for its copy; the follower's trade of it."""
    signal_id = stack.alert(source, body).json()["signal_id"]
    stack.wait(signal_id)
    row = stack.db.fetchone("SELECT id FROM webhook_signals WHERE parent_signal_id = %s"
                            " AND trading_bot_id = %s", (signal_id, follower["bot_id"]))
    assert row is not None
    assert stack.wait(row["id"]) == {row["id"]: "done"}
    (trade,) = stack.trades(row["id"])
    return trade


def wallet_quote(stack: Stack, owner: str) -> int:
    """Quote tokens in the owner's associated token account (0 when it does not exist)."""
    ata = get_associated_token_address(Pubkey.from_string(owner),
                                       stack.services.profile.quote_mint)
    rpc = SolanaRpc(stack.sandbox.rpc_url, label="test")
    try:
        return int(rpc.call("getTokenAccountBalance", [str(ata)])["value"]["amount"])
    except RpcError:
        return 0
    finally:
        rpc.close()


def venue_user(stack: Stack, agent: str) -> Any:
    """The agent's sub-account 0 as decoded from its account bytes."""
    key = get_user_account_public_key(stack.services.profile.program_id,
                                      Pubkey.from_string(agent), 0)
    rpc = SolanaRpc(stack.sandbox.rpc_url, label="test")
    try:
        _slot, account = rpc.get_account_info(key)
    finally:
        rpc.close()
    assert account is not None
    return read_user(account.data)


def venue_realised(stack: Stack, agent: str) -> int:
    """PnL of the agent's fills (all closed) by the sandbox's own books: sells - buys - fees."""
    fills = requests.get(f"{stack.sandbox.url}/sandbox/fills", params={"authority": agent},
                         timeout=5).json()["fills"]
    assert {f["direction"] for f in fills} == {"long", "short"}
    return sum((f["quote"] if f["direction"] == "short" else -f["quote"]) - f["fee"]
               for f in fills)


def sandbox_user(stack: Stack, agent: str) -> dict[str, Any]:
    """The sandbox's summary of the sub-account: quote_balance, free_collateral (1e6)."""
    return requests.get(f"{stack.sandbox.url}/sandbox/user", params={"authority": agent},
                        timeout=5).json()


def withdrawals(stack: Stack, agent: str) -> int:
    """Withdrawals the sandbox executed for this authority."""
    return stack.sandbox_stats(agent).get("withdrawals", 0)


def profitable_round_trip(stack: Stack, up_to: int = 165) -> tuple[
        dict[str, Any], dict[str, Any], dict[str, Any], int]:
    """Open at 150, close at `up_to`: (source, follower, close trade, creator's balance before)."""
    source, follower = copy_trading(stack)
    oracle(stack, 150)
    run_alert(stack, source, follower, OPEN_LONG)
    assert stack.position(follower["agent"]) > 0
    before = wallet_quote(stack, source["wallet"])
    oracle(stack, up_to)
    close = run_alert(stack, source, follower, CLOSE_LONG)
    assert close["reduce_only"] and close["status"] == "completed"
    assert stack.position(follower["agent"]) == 0
    return source, follower, close, before


@contextlib.contextmanager
def share_waiter(stack: Stack) -> Iterator[ShareWaiter]:
    waiter = ShareWaiter(stack.env["DATABASE_URL"])
    try:
        yield waiter
    finally:
        waiter.close()


def settled_share(stack: Stack, close: dict[str, Any]) -> dict[str, Any]:
    """The profit share owed on a closing trade, as its row once it is final (paid or void)."""
    share = share_for_trade(stack.db, close["id"])
    assert share is not None
    with share_waiter(stack) as waiter:
        return waiter.wait(share.id, WAIT_S)


# --- tests -------------------------------------------------------------------------------------


def test_a_profitable_close_pays_the_creator_exactly_the_share(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    row = settled_share(stack, close)
    assert row["status"] == "paid" and row["attempts"] == 0 and row["paid_tx_signature"]
    amount = int(row["amount"] * 10**6)
    pnl = int(row["realized_pnl"] * 10**6)
    user = venue_user(stack, follower["agent"])
    venue_pnl = venue_realised(stack, follower["agent"])  # the sandbox's own books
    assert pnl > 0 and abs(pnl - venue_pnl) <= 1  # ours floors; the sandbox rounds to nearest
    assert amount == pnl * 10 // 100
    assert wallet_quote(stack, source["wallet"]) - before == amount
    assert user.total_withdraws == amount and withdrawals(stack, follower["agent"]) == 1
    # the deposit pays the share; the realised PnL stays in the position, unsettled
    summary = sandbox_user(stack, follower["agent"])
    assert summary["quote_balance"] == 1000 * 10**6 - amount
    assert summary["free_collateral"] == 1000 * 10**6 + venue_pnl - amount
    replay = SubscriberClosed(close["id"], 1, -1, 1, 10**12)  # a replayed close: same share
    assert request(whereis(stack.root, "profit_share", 5), replay, 10) == row["id"]
    assert stack.db.fetchone("SELECT count(*) AS n FROM pending_profit_shares")["n"] == 1
    assert stack.db.fetchone("SELECT amount FROM pending_profit_shares")["amount"] == row[
        "amount"]


def test_a_losing_close_pays_nothing(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack, up_to=140)
    assert share_for_trade(stack.db, close["id"]) is None
    assert stack.db.fetchone("SELECT count(*) AS n FROM pending_profit_shares")["n"] == 0
    assert wallet_quote(stack, source["wallet"]) == before
    assert withdrawals(stack, follower["agent"]) == 0
    assert venue_user(stack, follower["agent"]).total_withdraws == 0


def test_a_partial_close_shares_the_profit_of_the_filled_part_only(stack: Stack) -> None:
    source, follower = copy_trading(stack)
    oracle(stack, 150)
    run_alert(stack, source, follower, OPEN_LONG)
    held = stack.position(follower["agent"])
    before = wallet_quote(stack, source["wallet"])
    oracle(stack, 165)
    stack.liquidity("partial", 0.5)
    signal_id = stack.alert(source, CLOSE_LONG).json()["signal_id"]
    stack.wait(signal_id)
    copy = stack.db.fetchone("SELECT id FROM webhook_signals WHERE parent_signal_id = %s",
                             (signal_id,))
    assert copy is not None and stack.wait(copy["id"]) == {copy["id"]: "partial"}
    (close,) = stack.trades(copy["id"])
    filled = int(close["filled_size"] * 10**9)
    assert close["status"] == "partial" and 0 < filled < held
    assert stack.position(follower["agent"]) == held - filled
    # the unfilled rest of the close is a retry that runs within a second: below the entry
    # price it closes at a loss, so this close's share is the only one paid
    oracle(stack, 140)
    row = settled_share(stack, close)
    assert row["status"] == "paid"
    opened, closed, *_rest = requests.get(f"{stack.sandbox.url}/sandbox/fills", timeout=5,
                                          params={"authority": follower["agent"]}).json()["fills"]
    assert closed["base"] == filled and opened["base"] == held
    venue_pnl = closed["quote"] - opened["quote"] * filled // held  # by the sandbox's books
    pnl = int(row["realized_pnl"] * 10**6)
    assert pnl > 0 and abs(pnl - venue_pnl) <= 1
    amount = int(row["amount"] * 10**6)
    assert amount == pnl // 10
    assert wallet_quote(stack, source["wallet"]) - before == amount
    assert venue_user(stack, follower["agent"]).total_withdraws == amount


class FaultyPayer(ExecutorPayer):
    """The real payer; on chosen calls the sandbox's RPC goes down first (both endpoints)."""

    def __init__(self, services: Services, down_on: set[int], heal_after: bool) -> None:
        super().__init__(services)
        self.calls = 0
        self._down_on = down_on
        self._heal_after = heal_after

    def _faults(self, **knobs: Any) -> None:
        url = self._services.settings.sandbox_url
        response = requests.post(f"{url}/sandbox/faults", json={"clear": True, **knobs},
                                 timeout=5)
        assert response.status_code == 200, response.text

    def send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        self.calls += 1
        if self.calls not in self._down_on:
            return super().send(build)
        self._faults(rpc_primary_down=True, rpc_backup_down=True)
        try:
            return super().send(build)
        finally:
            if self._heal_after:
                self._faults()


PAYERS: dict[str, FaultyPayer] = {}


def faulty(name: str, down_on: set[int], heal_after: bool) -> ActorKwargs:
    def kwargs(services: Services) -> dict[str, Any]:
        PAYERS[name] = FaultyPayer(services, down_on, heal_after)
        return {"payer": PAYERS[name]}
    return kwargs


@pytest.mark.parametrize("stack", [faulty("once", {1}, heal_after=True)], indirect=True)
def test_a_failed_payment_becomes_an_iou_and_is_paid_later(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    row = settled_share(stack, close)
    assert row["status"] == "paid"
    assert row["attempts"] == 1 and row["last_error"] == "rpc_unreachable"
    assert PAYERS["once"].calls == 2
    amount = int(row["amount"] * 10**6)
    assert wallet_quote(stack, source["wallet"]) - before == amount
    assert withdrawals(stack, follower["agent"]) == 1


def down_for_good(max_attempts: int, ttl_s: float) -> ActorKwargs:
    def kwargs(services: Services) -> dict[str, Any]:
        payer = FaultyPayer(services, set(range(1, 10_000)), heal_after=False)
        return {"payer": payer,
                "schedule": IouSchedule(interval_s=0.2, max_attempts=max_attempts,
                                        ttl_s=ttl_s)}
    return kwargs


@pytest.mark.parametrize("stack", [down_for_good(max_attempts=3, ttl_s=3600)], indirect=True)
def test_an_iou_is_void_after_too_many_tries(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    row = settled_share(stack, close)
    stack.faults()
    assert row["status"] == "void" and row["attempts"] == 3
    assert row["void_reason"].startswith("gave up after 3 attempts: ")
    assert row["paid_tx_signature"] is None
    assert wallet_quote(stack, source["wallet"]) == before
    assert withdrawals(stack, follower["agent"]) == 0


@pytest.mark.parametrize("stack", [down_for_good(max_attempts=50, ttl_s=2.0)], indirect=True)
def test_an_iou_is_void_when_it_expires(stack: Stack) -> None:
    source, follower, close, before = profitable_round_trip(stack)
    row = settled_share(stack, close)
    stack.faults()
    assert row["status"] == "void" and row["void_reason"].startswith("expired unpaid after")
    assert 1 <= row["attempts"] < 50
    assert wallet_quote(stack, source["wallet"]) == before
    assert withdrawals(stack, follower["agent"]) == 0


class DyingPayer(ExecutorPayer):
    """Sends the first payment for real, then kills the actor before it can mark it paid."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.sent: list[SentTx] = []

    def send(self, build: Callable[[Hash], BuiltTx]) -> SentTx:
        sent = super().send(build)
        self.sent.append(sent)
        if len(self.sent) == 1:
            assert self._services.root is not None
            whereis(self._services.root, "profit_share", 5).tell(CrashDrill())
            raise GreenletExit  # this worker dies with its actor: no outcome is recorded
        return sent


def dying(services: Services) -> dict[str, Any]:
    PAYERS["dying"] = DyingPayer(services)  # type: ignore[assignment]
    return {"payer": PAYERS["dying"]}


@pytest.mark.parametrize("stack", [dying], indirect=True)
def test_no_double_payment_across_a_crash_after_the_payment_landed(stack: Stack) -> None:
    first_life = whereis(stack.root, "profit_share", 5).actor_urn
    source, follower, close, before = profitable_round_trip(stack)
    row = settled_share(stack, close)
    assert whereis(stack.root, "profit_share", 5).actor_urn != first_life  # it did die
    payer: DyingPayer = PAYERS["dying"]  # type: ignore[assignment]
    (first,) = payer.sent  # the restarted actor found it landed and sent nothing
    assert first.verdict.state is TxState.LANDED
    assert row["status"] == "paid" and row["paid_tx_signature"] == first.signature
    amount = int(row["amount"] * 10**6)
    assert wallet_quote(stack, source["wallet"]) - before == amount
    assert withdrawals(stack, follower["agent"]) == 1
