"""The send's fence on PostgreSQL: a trade is marked as sent (Swift or on-chain) only by the
daemon that holds its bot's lease at the epoch it sends under, in the statement that marks it."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
import pytest

from storage.bot_leases import LeaseLost, acquire
from storage.database import Database
from storage.trades import (
    LegacySend,
    NewTrade,
    last_legacy_send,
    mark_legacy_sending,
    mark_swift_submitted,
    open_trade,
    update_trade,
)
from tests.storage.test_bot_leases import expire
from tests.storage.test_signals import make_bot

REQUEST = {"hash_key": "k", "max_slot": 10}

Mark = Callable[[Database, str, str, int | None], None]


def swift(db: Database, trade: str, holder: str, epoch: int | None) -> None:
    mark_swift_submitted(db, trade, "fence001", REQUEST, holder=holder, epoch=epoch)


def legacy(db: Database, trade: str, holder: str, epoch: int | None) -> None:
    mark_legacy_sending(db, trade, "sig1", 500, holder=holder, epoch=epoch)


def marked(db: Database, trade: str) -> bool:
    """Whether either mark touched the trade (a Swift submission or an on-chain send)."""
    row = db.fetchone(
        "SELECT swift_status IS NOT NULL OR tx_signature IS NOT NULL OR EXISTS (SELECT 1 FROM"
        " swift_order_logs WHERE trade_id = %(t)s) AS marked FROM bot_trades WHERE id = %(t)s",
        {"t": trade})
    assert row is not None
    return bool(row["marked"])


def held_trade(db: Database) -> tuple[str, str]:
    """A bot held by daemon "one" at epoch 1 and a pending trade of it: (bot, trade)."""
    bot = make_bot(db)
    assert acquire(db, bot, "one", 60) == 1
    return bot, open_trade(db, NewTrade(bot, None, "W", "SOL-PERP", "long", 10**9, False,
                                        "swift"), holder="one")


def moved_away(db: Database, bot: str) -> None:
    db.execute("UPDATE bot_leases SET holder = 'two', epoch = epoch + 1 WHERE bot_id = %s", (bot,))


def taken_back_later(db: Database, bot: str) -> None:
    """Held by another daemon meanwhile, then by this one again: a new epoch, same holder."""
    db.execute("UPDATE bot_leases SET epoch = epoch + 2 WHERE bot_id = %s", (bot,))


@pytest.mark.parametrize("mark", [swift, legacy])
def test_the_holder_at_its_epoch_marks_the_send(db: Database, mark: Mark) -> None:
    _, trade = held_trade(db)
    mark(db, trade, "one", 1)
    assert marked(db, trade)


@pytest.mark.parametrize("mark", [swift, legacy])
@pytest.mark.parametrize("change", [moved_away, taken_back_later, expire])
def test_a_lost_or_changed_lease_marks_nothing_and_raises(
        db: Database, mark: Mark, change: Callable[[Database, str], None]) -> None:
    bot, trade = held_trade(db)
    change(db, bot)
    with pytest.raises(LeaseLost):
        mark(db, trade, "one", 1)
    assert not marked(db, trade)
    row = db.fetchone("SELECT status FROM bot_trades WHERE id = %s", (trade,))
    assert row == {"status": "pending"}  # as the new holder's reconciliation expects it


@pytest.mark.parametrize("mark", [swift, legacy])
def test_a_trade_handed_to_reconciliation_is_never_marked(db: Database, mark: Mark) -> None:
    _, trade = held_trade(db)
    update_trade(db, trade, status="unknown")
    with pytest.raises(LeaseLost):
        mark(db, trade, "one", 1)
    assert not marked(db, trade)


def test_without_a_known_epoch_the_holder_alone_is_checked(db: Database) -> None:
    bot, trade = held_trade(db)
    taken_back_later(db, bot)
    swift(db, trade, "one", None)
    assert marked(db, trade)
    moved_away(db, bot)
    with pytest.raises(LeaseLost):
        legacy(db, trade, "one", None)


def test_a_hand_over_waits_for_the_mark_to_commit(db: Database, database_url: str) -> None:
    bot, trade = held_trade(db)
    other = psycopg2.connect(database_url)
    try:
        with db.connection():  # the mark's transaction, still open
            legacy(db, trade, "one", 1)
            with other.cursor() as cur:
                cur.execute("SET lock_timeout = '50ms'")
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    cur.execute("UPDATE bot_leases SET holder = 'two', epoch = epoch + 1"
                                " WHERE bot_id = %s", (bot,))
            other.rollback()
        moved_away(db, bot)  # once it committed, the hand-over goes through
    finally:
        other.close()
    assert marked(db, trade)


def test_the_last_unsettled_on_chain_send_of_a_signal_or_trade(db: Database) -> None:
    bot, first = held_trade(db)
    assert last_legacy_send(db, bot, None, first) is None  # nothing sent on-chain yet
    legacy(db, first, "one", 1)
    assert last_legacy_send(db, bot, None, first) == LegacySend("sig1", 500)
    update_trade(db, first, status="failed")  # its outcome is known: nothing to wait for
    assert last_legacy_send(db, bot, None, first) is None
