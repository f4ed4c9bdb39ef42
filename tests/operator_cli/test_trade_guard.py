"""guard_trade: stop flags and policy HMAC from the database, refusals counted and recorded."""

from __future__ import annotations

from prometheus_client import REGISTRY

from custody.trade_guard import guard_trade
from security.emergency_stop import (
    FlattenTicket,
    OrderIntent,
    OrderKind,
    OrderOrigin,
    flatten_ticket,
)
from storage import emergency_stops
from storage.bots import get_bot
from storage.database import Database
from storage.trade_refusals import refusals_for_bot
from tests.operator_cli.helpers import make_bot, make_wallet
from tests.security.helpers import ring as two_key_ring

OPEN = OrderIntent(OrderOrigin.WEBHOOK, OrderKind.OPEN, reduce_only=False)
CLOSE = OrderIntent(OrderOrigin.SUBSCRIBER, OrderKind.CLOSE, reduce_only=True)


def _count(reason: str) -> float:
    return REGISTRY.get_sample_value("policy_refusals_total", {"reason": reason}) or 0.0


def test_a_valid_bot_passes_and_nothing_is_recorded(db: Database) -> None:
    ring = two_key_ring("k-new")
    bot = make_bot(db, ring, make_wallet(db, ring))
    assert guard_trade(db, ring, bot, OPEN).allowed
    assert refusals_for_bot(db, bot.id) == []


def test_an_edited_policy_row_is_refused_counted_and_recorded(db: Database) -> None:
    ring = two_key_ring("k-new")
    bot = make_bot(db, ring, make_wallet(db, ring))
    db.execute("UPDATE trading_bots SET max_position_size = 1000000 WHERE id = %s", (bot.id,))
    edited = get_bot(db, bot.id)
    assert edited is not None
    before = _count("policy_hmac_mismatch")
    decision = guard_trade(db, ring, edited, OPEN)
    assert not decision.allowed and decision.reason == "policy_hmac_mismatch"
    assert _count("policy_hmac_mismatch") == before + 1
    [refusal] = refusals_for_bot(db, bot.id)
    assert (refusal.reason, refusal.origin, refusal.kind) == ("policy_hmac_mismatch", "webhook",
                                                              "open")
    assert refusal.wallet_address == bot.wallet_address


def test_a_policy_mac_moved_from_another_bot_is_refused(db: Database) -> None:
    ring = two_key_ring("k-new")
    wallet = make_wallet(db, ring)
    bot, other = make_bot(db, ring, wallet), make_bot(db, ring, wallet)
    db.execute("UPDATE trading_bots SET policy_hmac = %s WHERE id = %s",
               (other.policy_hmac, bot.id))
    moved = get_bot(db, bot.id)
    assert moved is not None
    assert guard_trade(db, ring, moved, CLOSE).reason == "policy_hmac_mismatch"


def test_wallet_stop_blocks_only_that_wallet_until_cleared(db: Database) -> None:
    ring = two_key_ring("k-new")
    stopped_wallet, other_wallet = make_wallet(db, ring), make_wallet(db, ring)
    bot, other = make_bot(db, ring, stopped_wallet), make_bot(db, ring, other_wallet)
    emergency_stops.set_wallet_stop(db, stopped_wallet, flatten=False, reason="drill")
    before = _count("wallet_emergency_stop")
    for intent in (OPEN, CLOSE):
        assert guard_trade(db, ring, bot, intent).reason == "wallet_emergency_stop"
    assert _count("wallet_emergency_stop") == before + 2
    assert guard_trade(db, ring, other, OPEN).allowed
    emergency_stops.clear_wallet_stop(db, stopped_wallet)
    assert guard_trade(db, ring, bot, OPEN).allowed


def test_global_stop_blocks_everyone_until_cleared(db: Database) -> None:
    ring = two_key_ring("k-new")
    bots = [make_bot(db, ring, make_wallet(db, ring)) for _ in range(2)]
    emergency_stops.set_global_stop(db, flatten=False, reason=None)
    assert all(guard_trade(db, ring, b, OPEN).reason == "global_emergency_stop" for b in bots)
    emergency_stops.clear_global_stop(db)
    assert all(guard_trade(db, ring, b, OPEN).allowed for b in bots)


def test_flatten_stop_lets_only_its_own_flatten_orders_through(db: Database) -> None:
    ring = two_key_ring("k-new")
    wallet = make_wallet(db, ring)
    bot = make_bot(db, ring, wallet)
    record = emergency_stops.set_wallet_stop(db, wallet, flatten=True, reason=None)
    assert record is not None and record.mode == "flatten"
    ticket = flatten_ticket(record.state, "wallet")
    flatten = OrderIntent(OrderOrigin.FLATTEN, OrderKind.CLOSE, True, ticket)
    assert guard_trade(db, ring, bot, flatten).allowed
    assert guard_trade(db, ring, bot, CLOSE).reason == "wallet_emergency_stop"
    emergency_stops.set_wallet_stop(db, wallet, flatten=True, reason="again")
    assert guard_trade(db, ring, bot, flatten).reason == "flatten_ticket_stale"
    forged = OrderIntent(OrderOrigin.FLATTEN, OrderKind.CLOSE, True,
                         FlattenTicket("made-up", "wallet"))
    assert not guard_trade(db, ring, bot, forged).allowed


def test_a_policy_under_the_old_key_passes_and_is_resigned(db: Database) -> None:
    old_ring = two_key_ring("k-old")
    bot = make_bot(db, old_ring, make_wallet(db, old_ring))
    assert bot.policy_hmac.startswith("v1.k-old.")
    new_ring = two_key_ring("k-new")
    assert guard_trade(db, new_ring, bot, OPEN).allowed
    resigned = get_bot(db, bot.id)
    assert resigned is not None and resigned.policy_hmac.startswith("v1.k-new.")
    assert guard_trade(db, new_ring.without("k-old"), resigned, OPEN).allowed


def test_unreadable_flags_fail_closed(db: Database, database_url: str) -> None:
    ring = two_key_ring("k-new")
    bot = make_bot(db, ring, make_wallet(db, ring))
    broken = Database(database_url.replace("/t_", "/missing_t_"), size=1)
    before = _count("guard_unavailable")
    decision = guard_trade(broken, ring, bot, OPEN)
    assert not decision.allowed and decision.reason == "guard_unavailable"
    assert _count("guard_unavailable") == before + 1
    broken.close()
