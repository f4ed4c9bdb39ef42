"""A crash between a subscriber's filled close and its profit-share record loses nothing: the
restart finds the close on the interrupted signal, records the share once and pays it."""

from __future__ import annotations

from pathlib import Path

from actors.services import Services
from storage.profit_shares import ShareWaiter, share_for_trade
from supervision import ChildSpec
from tests.e2e.stack import WAIT_S, Stack
from tests.e2e.test_profit_share import wallet_quote

OPEN = '{"action": "buy", "contracts": 1, "position_size": 1, "timenow": "open"}'
CLOSE = '{"action": "sell", "contracts": 1, "position_size": 0, "timenow": "close"}'


def without_profit_share(_services: Services) -> dict[str, ChildSpec | None]:
    """The tree without its profit_share actor: no share is ever made."""
    return {"profit_share": None}


def test_a_close_whose_share_was_not_recorded_is_paid_after_the_restart(
        database_url: str, tmp_path: Path) -> None:
    first = Stack(database_url, tmp_path, changes=without_profit_share)
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
