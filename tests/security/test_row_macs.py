"""Row MACs (security.row_macs, stored by storage.row_mac_rows): what each covers, key rotation,
the IOU cap, and the one-time backfill that MACs pre-0014 rows once and refuses a NULL MAC
afterwards."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from custody.trade_guard import check_retry_job
from security import row_macs
from security.emergency_stop import OrderIntent, OrderKind, OrderOrigin
from storage import row_mac_rows
from storage.bots import get_bot
from storage.database import Database
from storage.retry_queue import NewJob, enqueue, get_job
from tests.operator_cli.helpers import make_bot, make_wallet
from tests.security.helpers import ring

JOB: dict[str, Any] = {"id": "j1", "bot_id": "b1", "wallet_address": "W", "market": "SOL-PERP",
                       "side": "long", "size": Decimal("1.5"), "reduce_only": False,
                       "sub_account_id": 0, "signal_id": None, "webhook_payload": None}
RETRY_INTENT = OrderIntent(OrderOrigin.RETRY, OrderKind.OPEN, False)


def test_every_covered_field_changes_the_mac() -> None:
    keys = ring("k-new")
    stored = row_macs.sign(keys, row_macs.RETRY, row_macs.retry_fields(JOB))
    assert row_macs.check(keys, row_macs.RETRY, row_macs.retry_fields(JOB), stored).ok
    for name, value in (("id", "j2"), ("bot_id", "b2"), ("wallet_address", "X"),
                        ("side", "short"), ("size", Decimal("15")), ("reduce_only", True),
                        ("sub_account_id", 1), ("signal_id", "s"),
                        ("webhook_payload", {"flatten": {"stop_id": "x", "scope": "global"}})):
        fields = row_macs.retry_fields({**JOB, name: value})
        verdict = row_macs.check(keys, row_macs.RETRY, fields, stored)
        assert verdict == row_macs.MacCheck(False, "retry_job_mac_mismatch"), name


def test_the_same_value_in_another_type_encodes_the_same() -> None:
    keys = ring("k-new")
    stored = row_macs.sign(keys, row_macs.RETRY, row_macs.retry_fields(JOB))
    same = row_macs.retry_fields({**JOB, "size": Decimal("1.500000000")})
    assert row_macs.check(keys, row_macs.RETRY, same, stored).ok


def test_a_mac_of_one_kind_does_not_verify_as_another() -> None:
    keys = ring("k-new")
    fields = ["same", "fields"]
    stored = row_macs.sign(keys, row_macs.TERMS, fields)
    assert row_macs.check(keys, row_macs.SHARE, fields, stored).reason == (
        "profit_share_mac_mismatch")


@pytest.mark.parametrize(("stored", "reason"), [
    (None, "retry_job_mac_missing"), ("", "retry_job_mac_missing"),
    ("v1.k-new.zz", "retry_job_mac_malformed"), ("v2.k-new." + "0" * 64,
                                                 "retry_job_mac_malformed"),
    ("v1.k-gone." + "0" * 64, "retry_job_mac_unknown_key"),
])
def test_bad_stored_macs_are_refused_with_a_reason(stored: str | None, reason: str) -> None:
    verdict = row_macs.check(ring("k-new"), row_macs.RETRY, row_macs.retry_fields(JOB), stored)
    assert verdict == row_macs.MacCheck(False, reason)


def test_a_mac_under_the_previous_key_verifies_and_asks_to_be_moved() -> None:
    old = row_macs.sign(ring("k-old"), row_macs.RETRY, row_macs.retry_fields(JOB))
    verdict = row_macs.check(ring("k-new"), row_macs.RETRY, row_macs.retry_fields(JOB), old)
    assert verdict.ok and verdict.needs_resign


@pytest.mark.parametrize(("amount", "pnl", "percent", "ok"), [
    ("10", "100", "10", True), ("10.000001", "100", "10", False), ("1", "0", "10", False),
    ("1", "-5", "10", False), ("0", "100", "10", False), ("1", "100", "0", False),
    ("100", "100", "100", True),
])
def test_an_iou_never_exceeds_percent_times_pnl(amount: str, pnl: str, percent: str,
                                                ok: bool) -> None:
    assert row_macs.within_share_cap(Decimal(amount), Decimal(pnl), Decimal(percent)) is ok


def test_the_backfill_macs_old_rows_once_then_a_null_mac_is_refused(
        db: Database, tmp_path: Path) -> None:
    keys = ring("k-new")
    bot = make_bot(db, keys, make_wallet(db, keys))
    job_id = enqueue(db, NewJob(bot.id, bot.wallet_address, bot.market, "long", Decimal(1),
                                False, "normal", 5))  # written as before 0014: no MAC
    db.execute("UPDATE row_mac_backfill SET state = 'pending'")
    row_mac_rows._backfilled.clear()
    row_mac_rows.ensure_backfilled(db, keys, str(tmp_path))
    job = get_job(db, job_id)
    assert job is not None and job.job_mac is not None
    assert check_retry_job(db, keys, bot, job, RETRY_INTENT).allowed
    assert db.fetchone("SELECT binding_mac FROM trading_bots WHERE id = %s",
                       (bot.id,))["binding_mac"] is not None
    assert (tmp_path / row_mac_rows.BACKFILL_MARKER).exists()
    # an attacker nulls the MAC and sets the marker back: this daemon does not MAC it again
    db.execute("UPDATE trade_retry_queue SET job_mac = NULL, size = 50 WHERE id = %s",
               (job_id,))
    db.execute("UPDATE row_mac_backfill SET state = 'pending'")
    row_mac_rows._backfilled.clear()
    row_mac_rows.ensure_backfilled(db, keys, str(tmp_path))
    job = get_job(db, job_id)
    assert job is not None and job.job_mac is None
    decision = check_retry_job(db, keys, bot, job, RETRY_INTENT)
    assert decision.reason == "retry_job_mac_missing"
    assert [r["reason"] for r in db.fetchall("SELECT reason FROM trade_refusals")] == [
        "retry_job_mac_missing"]


def test_a_retry_job_read_as_a_dataclass_macs_exactly_as_its_row(db: Database) -> None:
    keys = ring("k-new")
    bot = make_bot(db, keys, make_wallet(db, keys))
    job_id = enqueue(db, NewJob(bot.id, bot.wallet_address, bot.market, "short",
                                Decimal("0.25"), True, "critical", 10, signal_id=None,
                                sub_account_id=bot.drift_subaccount_id,
                                payload={"flatten": {"stop_id": "s1", "scope": "wallet"}}),
                     ring=keys)
    row = db.fetchone("SELECT * FROM trade_retry_queue WHERE id = %s", (job_id,))
    job = get_job(db, job_id)
    assert job is not None and job.flatten == {"stop_id": "s1", "scope": "wallet"}
    assert row_macs.canonical(row_macs.RETRY, row_macs.retry_fields(job)) == (
        row_macs.canonical(row_macs.RETRY, row_macs.retry_fields(row)))
    assert row_macs.check(keys, row_macs.RETRY, row_macs.retry_fields(job), job.job_mac).ok
    assert check_retry_job(db, keys, bot, job, RETRY_INTENT).allowed


def test_a_bot_binding_is_checked_against_the_row_given(db: Database) -> None:
    keys = ring("k-new")
    bot = make_bot(db, keys, make_wallet(db, keys))
    assert row_mac_rows.seal_bot(db, keys, bot.id)
    assert row_mac_rows.check_bot_binding(db, keys, bot) is None
    db.execute("UPDATE trading_bots SET market_index = 7 WHERE id = %s", (bot.id,))
    edited = get_bot(db, bot.id)
    assert row_mac_rows.check_bot_binding(db, keys, edited) == "bot_binding_mac_mismatch"


def test_rotation_moves_every_verifying_row_mac_and_leaves_edited_ones(db: Database) -> None:
    old, new = ring("k-old"), ring("k-new")
    bot = make_bot(db, old, make_wallet(db, old))
    row_mac_rows.seal_bot(db, old, bot.id)
    kept = enqueue(db, NewJob(bot.id, bot.wallet_address, bot.market, "long", Decimal(1),
                              False, "normal", 5), ring=old)
    edited = enqueue(db, NewJob(bot.id, bot.wallet_address, bot.market, "long", Decimal(1),
                                False, "normal", 5), ring=old)
    db.execute("UPDATE trade_retry_queue SET size = 9 WHERE id = %s", (edited,))
    report = row_mac_rows.reseal_all(db, new)
    assert report[row_macs.BOT] == {"moved": 1, "current": 0, "refused": 0}
    assert report[row_macs.RETRY] == {"moved": 1, "current": 0, "refused": 1}
    assert row_mac_rows.mac_key_ids_in_use(db) == {"k-new": 2, "k-old": 1}
    job = db.fetchone("SELECT * FROM trade_retry_queue WHERE id = %s", (kept,))
    assert row_macs.check(new, row_macs.RETRY, row_macs.retry_fields(job), job["job_mac"]) == (
        row_macs.MacCheck(True))
