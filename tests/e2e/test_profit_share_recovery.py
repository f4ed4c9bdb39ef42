"""A crash between a subscriber's filled close and its profit-share record loses nothing: the
restart finds the close on the interrupted signal, records the share once and pays it."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.e2e.stack as stack_module
from actors.services import Services
from actors.tree import root_kwargs
from storage.profit_shares import ShareWaiter, share_for_trade
from tests.e2e.stack import WAIT_S, Stack
from tests.e2e.test_profit_share import wallet_quote

OPEN = '{"action": "buy", "contracts": 1, "position_size": 1, "timenow": "open"}'
CLOSE = '{"action": "sell", "contracts": 1, "position_size": 0, "timenow": "close"}'


def without_profit_share(services: Services) -> dict:
    kwargs = root_kwargs(services)
    return {**kwargs, "children": [c for c in kwargs["children"] if c.name != "profit_share"]}


def test_a_close_whose_share_was_not_recorded_is_paid_after_the_restart(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "root_kwargs", without_profit_share)
    first = Stack(database_url, tmp_path)  # no profit_share actor: the share is never made
    source = first.new_bot(max_usd="300")
    first.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    wallet = first.cli("wallet", "create", "--fund", "1000")
    follower = first.cli("bot", "subscribe", "--wallet", wallet["wallet"], "--to",
                         source["bot_id"], "--capital-usd", "200")["subscriber_bot_id"]
    for body, move in ((OPEN, None), (CLOSE, 1.04)):
        if move:
            first.move_oracle(move)
        signal_id = first.alert(source, body, "application/json").json()["signal_id"]
        first.wait(signal_id)
        (copy,) = first.db.fetchall("SELECT id FROM webhook_signals WHERE parent_signal_id"
                                    " = %s", (signal_id,))
        first.wait(copy["id"])
    (close,) = first.trades(copy["id"])
    assert close["reduce_only"] and share_for_trade(first.db, close["id"]) is None
    # the state a crash in that window leaves: the copy still processing, no share row
    first.db.execute("UPDATE webhook_signals SET status = 'processing' WHERE id = %s",
                     (copy["id"],))
    first.close(keep_sandbox=True)
    monkeypatch.setattr(stack_module, "root_kwargs", root_kwargs)

    before = wallet_quote(first, source["wallet"])
    second = Stack(database_url, tmp_path, sandbox=first.sandbox)
    waiter = ShareWaiter(database_url)
    try:
        # nothing of it was on the wire any more: it ran again, and found nothing left to close
        assert second.wait(copy["id"])[copy["id"]] == "done"
        assert second.trades(copy["id"]) == [close]
        share = share_for_trade(second.db, close["id"])
        assert share is not None
        paid = waiter.wait(share.id, WAIT_S)
        assert paid["status"] == "paid"
        assert wallet_quote(second, source["wallet"]) - before == int(paid["amount"] * 10**6)
        again = second.db.fetchall("SELECT id FROM pending_profit_shares WHERE"
                                   " subscriber_bot_id = %s", (follower,))
        assert len(again) == 1
    finally:
        waiter.close()
        second.close()
