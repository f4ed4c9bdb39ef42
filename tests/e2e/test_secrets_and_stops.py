"""Known secrets never surface, and an emergency stop holds on every path.

Every execution path runs with known secrets (webhook secret, agent private key, server key,
admin token) while every log record is captured at DEBUG; then the logs, the HTTP answers, the
operator CLI's outputs and the Prometheus exposition are searched for each secret in its usual
encodings. A global stop then refuses the webhook, manual, subscriber and retry paths alike.
"""

from __future__ import annotations

import base64
import logging
from decimal import Decimal
from pathlib import Path

import base58
import pytest
import requests
from prometheus_client import REGISTRY, generate_latest

from security.agent_keys import open_agent_privkey_legacy
from storage.retry_queue import JobWaiter, NewJob, enqueue
from storage.wallets import legacy_agent_envelope
from tests.e2e.stack import ADMIN, WAIT_S, Stack

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"


def encodings(secret: bytes | str) -> set[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = {raw.hex(), base64.b64encode(raw).decode(), base58.b58encode(raw).decode(),
             str(list(raw))[1:-1]}
    if isinstance(secret, str):
        forms.add(secret)
    return {f for f in forms if len(f) >= 16}


@pytest.mark.parametrize("stack", [{"LOG_LEVEL": "debug"}], indirect=True)
def test_no_secret_reaches_logs_answers_cli_or_metrics(stack: Stack,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    source = stack.new_bot(max_usd="300")
    published = stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    wallet = stack.cli("wallet", "create", "--fund", "1000")
    follower = stack.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                         source["bot_id"], "--capital-usd", "200")
    outputs += [str(published), str(follower)]
    answer = stack.alert(source, OPEN_LONG)
    wrong = stack.alert(source, OPEN_LONG, secret=source["secret"][:-2] + "xx")
    outputs += [answer.text, wrong.text]
    stack.wait(answer.json()["signal_id"])
    manual = requests.post(f"{stack.url}/api/trading-bots/{source['bot_id']}/manual-trade",
                           json={"action": "close"}, timeout=10,
                           headers={"Authorization": f"Bearer {ADMIN}"})
    stack.wait(manual.json()["signal_id"])
    outputs += [manual.text, str(stack.story(answer.json()["signal_id"]))]
    for args in (("bot", "list"), ("bot", "show", source["bot_id"]),
                 ("signal", "show", answer.json()["signal_id"]), ("retry", "list")):
        outputs.append(str(stack.cli(*args)))
    agent_key = open_agent_privkey_legacy(
        stack.services.ring, source["wallet"], legacy_agent_envelope(stack.db, source["wallet"]))
    server_key = Path(stack.env["SERVER_KEYS"].split("=file:")[1]).read_bytes()
    secrets = {"webhook secret": source["secret"], "agent key": agent_key,
               "agent seed": agent_key[:32], "server key": server_key, "admin token": ADMIN}
    captured = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    haystacks = {"logs": captured, "answers and CLI": "\n".join(outputs),
                 "metrics": generate_latest(REGISTRY).decode()}
    assert len(caplog.records) > 20  # the flow really logged
    for name, secret in secrets.items():
        for where, text in haystacks.items():
            leaked = [form for form in encodings(secret) if form in text]
            assert not leaked, f"{name} found in {where}"


def test_a_global_stop_refuses_every_path(stack: Stack) -> None:
    source = stack.new_bot(max_usd="300")
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    wallet = stack.cli("wallet", "create", "--fund", "1000")
    follower = stack.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                         source["bot_id"], "--capital-usd", "200")
    stack.cli("estop", "set", "--global", "--reason", "drill")
    webhook = stack.alert(source, OPEN_LONG).json()["signal_id"]
    manual = requests.post(f"{stack.url}/api/trading-bots/{source['bot_id']}/manual-trade",
                           json={"action": "buy"}, timeout=10,
                           headers={"Authorization": f"Bearer {ADMIN}"}).json()["signal_id"]
    stack.wait(webhook, manual)
    (copy,) = [r["id"] for r in stack.db.fetchall(
        "SELECT id FROM webhook_signals WHERE parent_signal_id = %s", (webhook,))]
    stack.wait(copy)
    job = enqueue(stack.db, NewJob(bot_id=source["bot_id"], wallet_address=source["wallet"],
                                   market="SOL-PERP", side="long", size=Decimal(1),
                                   reduce_only=False, priority="normal", max_attempts=5),
                  ring=stack.services.ring)
    waiter = JobWaiter(stack.env["DATABASE_URL"])
    try:
        assert waiter.wait(job, ("failed",), WAIT_S)["last_error"].startswith("refused")
    finally:
        waiter.close()
    for signal_id in (webhook, manual, copy):
        (trade,) = stack.trades(signal_id)
        assert trade["status"] == "failed" and trade["error_message"].startswith("refused")
    refusals = stack.db.fetchall("SELECT origin FROM trade_refusals")
    assert {r["origin"] for r in refusals} == {"webhook", "manual", "subscriber", "retry"}
    for agent in (source["agent"], wallet["agent_public_key"]):
        assert stack.orders_reaching_sandbox(agent) == 0
    assert follower["subscriber_bot_id"]
