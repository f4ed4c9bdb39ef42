"""The storage functions the CLI and the bot actors share: wallets, bots, copy trading, stops."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest
from psycopg2.extras import Json

from security.emergency_stop import StopMode
from storage import bots, copy_trading, emergency_stops, trade_refusals, wallets
from storage.database import Database
from tests.operator_cli.helpers import make_bot, make_wallet
from tests.security.helpers import ring as two_key_ring

RING = two_key_ring("k-new")


def test_wallet_round_trip_and_lookup_by_owner_or_agent(db: Database) -> None:
    stored = wallets.insert_wallet(db, address="Owner1111", agent_public_key="Agent1111",
                                   legacy_envelope="env-1")
    assert stored.has_legacy_key and not stored.has_v3_key and not stored.emergency_stop_triggered
    assert wallets.get_wallet(db, "Owner1111") == stored
    assert wallets.find_wallet(db, "Agent1111") == stored
    assert wallets.find_wallet(db, "nobody") is None
    assert wallets.wallet_exists(db, "Owner1111", "x") == "address"
    assert wallets.wallet_exists(db, "other", "Agent1111") == "agent"
    assert wallets.wallet_exists(db, "other", "x") is None
    assert "env-1" not in repr(stored)
    assert wallets.legacy_agent_envelope(db, "Owner1111") == "env-1"
    with pytest.raises(psycopg2.IntegrityError):
        wallets.insert_wallet(db, address="Owner1111", agent_public_key="Agent2",
                              legacy_envelope="e")


def test_legacy_envelope_compare_and_swap(db: Database) -> None:
    wallets.insert_wallet(db, address="W", agent_public_key="A", legacy_envelope="old")
    assert not wallets.replace_legacy_envelope(db, "W", "stale", "new")
    assert wallets.replace_legacy_envelope(db, "W", "old", "new")
    assert wallets.legacy_envelopes(db) == [("W", "new")]


def test_bot_round_trip_hides_secrets_from_repr(db: Database) -> None:
    wallet = make_wallet(db, RING)
    bot = make_bot(db, RING, wallet, leverage="2.5", max_position="10.25")
    assert bots.get_bot(db, bot.id) == bot
    assert bot.leverage == Decimal("2.5") and bot.policy.market == "SOL-PERP"
    assert bot.policy_hmac and bot.policy_hmac not in repr(bot)
    assert [b.id for b in bots.list_bots(db, wallet)] == [bot.id]
    assert bots.list_bots(db, "someone else") == []


def test_policy_compare_and_swap_refuses_an_edited_row(db: Database) -> None:
    bot = make_bot(db, RING, make_wallet(db, RING))
    db.execute("UPDATE trading_bots SET leverage = 9 WHERE id = %s", (bot.id,))
    assert not bots.replace_policy_hmac(db, bot, "v1.k-new." + "0" * 64)
    fresh = bots.get_bot(db, bot.id)
    assert fresh is not None and bots.replace_policy_hmac(db, fresh, "v1.k-new." + "1" * 64)


def test_copy_trading_rows(db: Database) -> None:
    creator, follower = make_wallet(db, RING), make_wallet(db, RING)
    source = make_bot(db, RING, creator)
    published = copy_trading.publish_bot(db, trading_bot_id=source.id,
                                         creator_wallet_address=creator,
                                         profit_share_percent=Decimal("12.5"))
    assert copy_trading.find_published(db, source.id) == published
    assert copy_trading.find_published(db, published.id) == published
    assert copy_trading.published_for_bot(db, source.id) == published
    sub_bot = make_bot(db, RING, follower, source_published_bot_id=published.id)
    sub = copy_trading.insert_subscription(db, published_bot_id=published.id,
                                           subscriber_bot_id=sub_bot.id,
                                           subscriber_wallet_address=follower,
                                           capital_usd=Decimal(100))
    assert copy_trading.active_subscription(db, published.id, follower) == sub
    assert copy_trading.active_subscription(db, published.id, creator) is None
    assert [b.id for b in copy_trading.subscriber_bots(db, published.id)] == [sub_bot.id]
    assert copy_trading.subscriber_counts(db) == {published.id: 1}
    db.execute("UPDATE trading_bots SET is_active = false WHERE id = %s", (sub_bot.id,))
    assert copy_trading.subscriber_bots(db, published.id) == []


def test_stop_flags_round_trip(db: Database) -> None:
    wallet = make_wallet(db, RING)
    assert emergency_stops.stop_states(db, wallet) == (emergency_stops.NO_STOP,
                                                       emergency_stops.NO_STOP)
    record = emergency_stops.set_wallet_stop(db, wallet, flatten=True, reason="r")
    assert record is not None and record.state.mode is StopMode.STOP_AND_FLATTEN
    assert record.reason == "r" and record.state.stop_id
    glob = emergency_stops.set_global_stop(db, flatten=False, reason=None)
    assert emergency_stops.stop_states(db, wallet) == (glob.state, record.state)
    assert emergency_stops.clear_global_stop(db) is True
    assert emergency_stops.clear_global_stop(db) is False
    assert emergency_stops.clear_wallet_stop(db, wallet) is True
    assert emergency_stops.clear_wallet_stop(db, "nobody") is None
    assert emergency_stops.set_wallet_stop(db, "nobody", flatten=False, reason=None) is None


def test_stop_flags_fail_closed(db: Database) -> None:
    glob, missing = emergency_stops.stop_states(db, "no-such-wallet")
    assert glob.mode is StopMode.NONE and missing.mode is StopMode.STOP
    db.execute("INSERT INTO runtime_flags (key, value) VALUES (%s, %s)",
               (emergency_stops.GLOBAL_STOP_FLAG, Json({"mode": "garbled"})))
    assert emergency_stops.global_stop(db).state.mode is StopMode.STOP
    wallet = make_wallet(db, RING)
    db.execute("UPDATE wallets SET emergency_stop_triggered = true, emergency_stop_mode ="
               " 'flatten' WHERE address = %s", (wallet,))
    assert emergency_stops.stop_states(db, wallet)[1].mode is StopMode.STOP  # no id: plain stop


def test_refusals_are_recorded_per_bot(db: Database) -> None:
    bot = make_bot(db, RING, make_wallet(db, RING))
    trade_refusals.record_refusal(db, trading_bot_id=bot.id, wallet_address=bot.wallet_address,
                                  reason="policy_hmac_mismatch", origin="retry", kind="close",
                                  reduce_only=True)
    [row] = trade_refusals.refusals_for_bot(db, bot.id)
    assert (row.reason, row.origin, row.kind, row.reduce_only) == (
        "policy_hmac_mismatch", "retry", "close", True)
