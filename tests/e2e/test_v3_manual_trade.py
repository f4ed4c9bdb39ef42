"""A manual trade of a V3 bot needs its owner's signature; the admin token alone trades only
legacy bots. Real owner keys sign real requests over loopback HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests
from solders.keypair import Keypair

from security.owner_requests import owner_request_message
from tests.e2e.stack import ADMIN, Stack
from tests.e2e.test_v3_grants import v3_bot


def manual(stack: Stack, bot_id: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """POST a manual trade to the public listener, as an owner calls it."""
    return requests.post(f"{stack.url}/api/trading-bots/{bot_id}/manual-trade", data=body,
                         headers={"Content-Type": "application/json", **headers}, timeout=10)


def signed(owner: Keypair, bot_id: str, body: bytes, at: float) -> dict[str, str]:
    """The owner's signature headers for this request."""
    stamp = f"{at:.0f}"
    signature = owner.sign_message(owner_request_message(bot_id, stamp, body))
    return {"X-Owner-Signature": str(signature), "X-Owner-Timestamp": stamp}


def manual_signals(stack: Stack, bot_id: str) -> list[dict[str, Any]]:
    return stack.db.fetchall("SELECT id FROM webhook_signals WHERE trading_bot_id = %s"
                             " AND source = 'manual'", (bot_id,))


def test_only_the_owner_trades_a_v3_bot_by_hand(stack: Stack, tmp_path: Path) -> None:
    bot = v3_bot(stack, tmp_path)
    stack.cli("bot", "authorize", bot["bot_id"], "--owner-signature-file", bot["sig"])
    body = json.dumps({"action": "buy"}).encode()

    by_admin = manual(stack, bot["bot_id"], body, {"Authorization": f"Bearer {ADMIN}"})
    assert by_admin.status_code == 403 and "owner" in by_admin.json()["error"]
    stranger = signed(Keypair(), bot["bot_id"], body, time.time())
    assert manual(stack, bot["bot_id"], body, stranger).status_code == 401
    stale = signed(bot["owner"], bot["bot_id"], body, time.time() - 600)
    assert manual(stack, bot["bot_id"], body, stale).status_code == 401
    other_body = signed(bot["owner"], bot["bot_id"], json.dumps({"action": "sell"}).encode(),
                        time.time())
    assert manual(stack, bot["bot_id"], body, other_body).status_code == 401
    assert manual_signals(stack, bot["bot_id"]) == []  # nothing refused was recorded

    headers = signed(bot["owner"], bot["bot_id"], body, time.time())
    accepted = manual(stack, bot["bot_id"], body, headers)
    assert accepted.status_code == 202, accepted.text
    signal_id = accepted.json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1
    replay = manual(stack, bot["bot_id"], body, headers)  # the same signed request again
    assert replay.status_code == 200 and replay.json()["duplicate"]
    assert stack.orders_reaching_sandbox(bot["agent"]) == 1


def test_the_admin_token_still_trades_a_legacy_bot(stack: Stack) -> None:
    bot = stack.new_bot(max_usd="300")
    answer = manual(stack, bot["bot_id"], json.dumps({"action": "buy"}).encode(),
                    {"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 202, answer.text
