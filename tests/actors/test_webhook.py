"""WebhookActor serving the daemon's public routes (httpapi.listeners.build_router) over real
HTTP on loopback, and the IntakeListener waking bots on NOTIFY, on the session database: an
authenticated alert is stored once and wakes its bot, unauthenticated input is counted and never
written, and a signal committed by another process wakes its bot."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from gevent.queue import Queue
from prometheus_client import REGISTRY
from solders.keypair import Keypair

from actors.bot import bot_child_name
from actors.intake_listener import IntakeListener
from actors.messages import ProcessSignal
from actors.services import Services
from actors.webhook import GetAddress, WebhookActor
from httpapi.listeners import build_router
from security.webhook_auth import generate_webhook_secret, hash_bound_webhook_secret
from storage.bots import insert_bot
from storage.signals import record_flatten_signals, record_signal
from storage.wallets import insert_wallet
from supervision import TerminateChild, request
from tests.actors.conftest import ASK_S, HTTP_S, child, running, stand_in_bot

WEBHOOK = "/api/webhook/tradingview/"



@dataclass
class Bot:
    """A bot row with a bound webhook secret, and the wake-ups its stand-in received."""

    services: Services
    bot_id: str
    secret: str
    wakes: Queue

    def next_wake(self) -> str:
        """The reason of the next wake-up (the signal id for the webhook's), within ASK_S."""
        reason: str = self.wakes.get(timeout=ASK_S)
        return reason

    def rows(self) -> list[dict[str, Any]]:
        return self.services.db.fetchall(
            "SELECT id, status, source, parsed FROM webhook_signals WHERE trading_bot_id = %s"
            " ORDER BY seq", (self.bot_id,))


@pytest.fixture
def bot(services: Services) -> Iterator[Bot]:
    """A bot of its own with its stand-in; its signals, stand-in, row and wallet go after."""
    db, wallet, bot_id = services.db, str(Keypair().pubkey()), str(uuid.uuid4())
    secret = generate_webhook_secret()
    insert_wallet(db, address=wallet, agent_public_key=str(Keypair().pubkey()),
                  legacy_envelope="not-a-real-envelope")
    insert_bot(db, bot_id=bot_id, wallet_address=wallet, name="webhook tests",
               market="SOL-PERP", market_index=0, leverage=Decimal(5),
               max_position_size=Decimal(500), policy_hmac="unused",
               webhook_secret_hash=hash_bound_webhook_secret(services.ring, bot_id, secret))
    made = Bot(services, bot_id, secret, Queue())
    stand_in_bot(services, bot_id, lambda wake: made.wakes.put(wake.signal_id), ProcessSignal)
    try:
        yield made
    finally:
        db.execute("DELETE FROM webhook_signals WHERE trading_bot_id = %s", (bot_id,))
        request(child(services, "bots"), TerminateChild(bot_child_name(bot_id)), ASK_S)
        db.execute("DELETE FROM trading_bots WHERE id = %s", (bot_id,))
        db.execute("DELETE FROM wallets WHERE address = %s", (wallet,))


@pytest.fixture
def url(services: Services) -> Iterator[str]:
    """A WebhookActor on a free loopback port serving the public routes; its base URL."""
    actor = WebhookActor.start(host="127.0.0.1", port=0, app=build_router(services),
                               read_timeout_s=HTTP_S)
    with running(actor):
        host, port = request(actor, GetAddress(), ASK_S)
        yield f"http://{host}:{port}"


def alert(url: str, bot_id: str, secret: str | None, timenow: str) -> requests.Response:
    """POST a JSON buy alert (unique by `timenow`) to the bot's webhook."""
    body = json.dumps({"action": "buy", "contracts": 1, "position_size": 1, "timenow": timenow})
    params = {} if secret is None else {"secret": secret}
    return requests.post(f"{url}{WEBHOOK}{bot_id}", params=params, data=body, timeout=HTTP_S,
                         headers={"Content-Type": "application/json"})


def unauthenticated(reason: str) -> float:
    """webhook_unauthenticated_total{reason} of this process."""
    return REGISTRY.get_sample_value("webhook_unauthenticated_total", {"reason": reason}) or 0.0


def rows_of(services: Services, bot_id: str) -> int:
    """Signal rows of any status naming `bot_id`."""
    row = services.db.fetchone(
        "SELECT count(*) AS n FROM webhook_signals WHERE trading_bot_id = %s", (bot_id,))
    assert row is not None
    return int(row["n"])


def test_authenticated_alert_is_stored_once_and_wakes_its_bot_once(url: str, bot: Bot) -> None:
    """Accepted means durable and executed once: a resent alert is answered, not run again."""
    first = alert(url, bot.bot_id, bot.secret, "t1")
    assert first.status_code == 202, first.text
    signal_id = first.json()["signal_id"]
    assert first.json() == {"signal_id": signal_id, "status": "accepted", "duplicate": False}
    assert bot.next_wake() == signal_id
    again = alert(url, bot.bot_id, bot.secret, "t1")
    assert (again.status_code, again.json()) == (
        200, {"signal_id": signal_id, "status": "duplicate", "duplicate": True})
    probe = alert(url, bot.bot_id, bot.secret, "t2")  # its wake-up follows any of the duplicate
    assert probe.status_code == 202, probe.text
    assert bot.next_wake() == probe.json()["signal_id"]  # the duplicate woke nobody
    assert bot.wakes.empty()
    rows = bot.rows()
    assert [(r["id"], r["status"], r["source"]) for r in rows] == [
        (signal_id, "accepted", "webhook"), (probe.json()["signal_id"], "accepted", "webhook")]
    assert rows[0]["parsed"]["action"] == "buy"


def test_unauthenticated_alerts_are_counted_and_never_written(url: str, bot: Bot) -> None:
    """A leaked bot id alone cannot trade or fill the database: refusals write nothing."""
    reasons = ("unknown_bot", "webhook_secret_mismatch", "webhook_secret_missing")
    before = {reason: unauthenticated(reason) for reason in reasons}
    stranger = str(uuid.uuid4())
    unknown = alert(url, stranger, bot.secret, "u1")
    wrong = alert(url, bot.bot_id, generate_webhook_secret(), "u2")
    missing = alert(url, bot.bot_id, None, "u3")
    assert (unknown.status_code, wrong.status_code, missing.status_code) == (404, 401, 401)
    assert {reason: unauthenticated(reason) - before[reason] for reason in reasons} == {
        "unknown_bot": 1, "webhook_secret_mismatch": 1, "webhook_secret_missing": 1}
    probe = alert(url, bot.bot_id, bot.secret, "u4")  # the one authenticated alert
    assert probe.status_code == 202, probe.text
    assert bot.next_wake() == probe.json()["signal_id"]  # nothing woke the bot before it
    assert bot.wakes.empty()
    assert [r["id"] for r in bot.rows()] == [probe.json()["signal_id"]]
    assert rows_of(bot.services, stranger) == 0


def test_listener_wakes_the_bot_of_a_signal_committed_elsewhere(bot: Bot) -> None:
    """The operator's stop-and-flatten (another process) reaches the bot without a webhook."""
    db = bot.services.db
    # a signal left waiting (its wake-up lost): the sweep at connect, after LISTEN, wakes it
    record_signal(db, bot.bot_id, f"left:{uuid.uuid4()}", (), "webhook", None, {"action": "buy"})
    with running(IntakeListener.start(services=bot.services)):
        assert bot.next_wake() == "backlog"  # listening from here on
        with db.connection():  # the CLI's transaction: the row and its NOTIFY commit together
            assert record_flatten_signals(db, [bot.bot_id], str(uuid.uuid4()), "bot") == 1
        assert bot.next_wake() == "notified"
    assert bot.wakes.empty()
    assert [r["source"] for r in bot.rows()] == ["webhook", "flatten"]
