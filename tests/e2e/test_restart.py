"""Accepted means durable: signals accepted while the tree is down run after the restart, once."""

from __future__ import annotations

from pathlib import Path

from storage.database import Database
from storage.signals import record_signal
from tests.e2e.stack import Stack
from trading.alerts import parse_alert


def test_signals_accepted_before_a_restart_run_after_it_in_order(database_url: str,
                                                                 tmp_path: Path) -> None:
    first = Stack(database_url, tmp_path)
    bot = first.new_bot(max_usd="300")
    first.close(keep_sandbox=True)  # the tree is down; only the database remains
    bodies = [b"order buy @ 1 filled on SOLUSD. New strategy position is 1",
              b"order sell @ 1 filled on SOLUSD. New strategy position is 0"]
    db = Database(database_url, size=2)
    signal_ids = [record_signal(db, bot["bot_id"], f"pre-restart-{i}", (), "webhook",
                                body.decode(), parse_alert(body).as_dict()).signal_id
                  for i, body in enumerate(bodies)]
    db.close()
    second = Stack(database_url, tmp_path, sandbox=first.sandbox)
    try:
        assert second.wait(*signal_ids) == dict.fromkeys(signal_ids, "done")
        sides = [t["side"] for s in signal_ids for t in second.trades(s)]
        assert sides == ["long", "short"]
        assert second.orders_reaching_sandbox(bot["agent"]) == 2
        assert second.position(bot["agent"]) == 0
    finally:
        second.close()
