"""pending_profit_shares: create once per closing trade, claim with a lease, settle, count.

A share is created with idempotency_key = the closing trade's id, so a crash and a replay of
the same close never create two. Payment attempts claim due shares with
`SELECT ... FOR UPDATE SKIP LOCKED` and a lease (as storage.retry_queue does): two daemons never
pay one share at once, and a share whose worker died is claimed again when the lease runs out.
Before a payment is sent its signature and last valid block height are recorded
(`record_attempt`); while that signature's fate is unknown the share keeps it, and the next
attempt must resolve it on chain before anything is sent again. Every settlement notifies
NOTIFY_CHANNEL with the share id, so waiters need not poll.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from security import row_macs
from security.server_key import ServerKeyRing
from storage.bot_leases import LEASED_BY
from storage.database import Database
from storage.notify import Listener

NOTIFY_CHANNEL = "profit_share_settled"
FINAL_STATUSES = frozenset({"paid", "void"})


def _settle(db: Database, update: str, params: dict[str, Any]) -> bool:
    """Run one settling UPDATE (must say RETURNING id) and notify waiters if it took."""
    rows = db.fetchall(f"WITH done AS ({update} RETURNING id)"
                       f" SELECT pg_notify('{NOTIFY_CHANNEL}', id) FROM done", params)
    return len(rows) == 1


@dataclass(frozen=True)
class NewShare:
    """A share owed by a subscriber to a creator for one closing trade."""

    trade_id: str
    subscriber_bot_id: str
    published_bot_id: str
    subscriber_wallet_address: str
    creator_wallet_address: str
    amount: Decimal  # quote, 6 decimals
    realized_pnl: Decimal
    profit_share_percent: Decimal
    ttl_s: float


@dataclass(frozen=True)
class Share:
    """One pending_profit_shares row."""

    id: str
    idempotency_key: str
    subscriber_bot_id: str
    published_bot_id: str
    trade_id: str | None
    subscriber_wallet_address: str
    creator_wallet_address: str
    amount: Decimal
    realized_pnl: Decimal
    profit_share_percent: Decimal
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    expires_at: datetime
    paid_tx_signature: str | None
    void_reason: str | None
    claimed_by: str | None
    inflight_signature: str | None
    inflight_last_valid_block_height: int | None
    share_mac: str | None = None


_COLUMNS = ", ".join(Share.__dataclass_fields__)


def _share(row: dict[str, Any]) -> Share:
    """Row dict to Share."""
    return Share(**{name: row[name] for name in Share.__dataclass_fields__})


def create_share(db: Database, share: NewShare,
                 ring: ServerKeyRing | None = None) -> tuple[str, bool]:
    """Insert the share unless its trade already has one; (id, created now). With `ring`
    (the daemon) the IOU is MAC'd; a share without a valid MAC is never paid."""
    share_id = str(uuid.uuid4())
    mac = None if ring is None else row_macs.sign(ring, row_macs.SHARE, row_macs.share_fields({
        **share.__dict__, "id": share_id, "idempotency_key": share.trade_id}))
    row = db.fetchone(
        f"INSERT INTO pending_profit_shares (id, {'share_mac' if mac else 'last_error'},"
        " idempotency_key, subscriber_bot_id,"
        " published_bot_id, trade_id, subscriber_wallet_address, creator_wallet_address,"
        " amount, realized_pnl, profit_share_percent, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " now() + make_interval(secs => %s))"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        (share_id, mac, share.trade_id, share.subscriber_bot_id, share.published_bot_id,
         share.trade_id,
         share.subscriber_wallet_address, share.creator_wallet_address, share.amount,
         share.realized_pnl, share.profit_share_percent, share.ttl_s))
    if row is not None:
        return row["id"], True
    existing = db.fetchone("SELECT id FROM pending_profit_shares WHERE idempotency_key = %s",
                           (share.trade_id,))
    assert existing is not None
    return existing["id"], False


def get_share(db: Database, share_id: str) -> Share | None:
    """One share by id."""
    row = db.fetchone(f"SELECT {_COLUMNS} FROM pending_profit_shares WHERE id = %s",
                      (share_id,))
    return _share(row) if row else None


def share_for_trade(db: Database, trade_id: str) -> Share | None:
    """The share of a closing trade, if one was owed."""
    row = db.fetchone(f"SELECT {_COLUMNS} FROM pending_profit_shares WHERE idempotency_key = %s",
                      (trade_id,))
    return _share(row) if row else None


def claim_due(db: Database, worker: str, limit: int, lease_s: float,
              holder: str | None = None) -> list[Share]:
    """Claim up to `limit` due shares for `worker`; shares whose lease ran out count as due.
    With `holder`, only shares of subscriber bots whose lease that process holds (each share
    is paid by its bot's holder, as its retry jobs are run)."""
    fence = "" if holder is None else f" AND {LEASED_BY.format(bot='subscriber_bot_id')}"
    rows = db.fetchall(
        "UPDATE pending_profit_shares p SET status = 'sending', claimed_by = %(worker)s,"
        " claimed_until = now() + make_interval(secs => %(lease)s), updated_at = now()"
        " WHERE p.id IN (SELECT id FROM pending_profit_shares"
        "  WHERE ((status = 'pending' AND next_attempt_at <= now())"
        f"     OR (status = 'sending' AND claimed_until < now())){fence}"
        "  ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
        f" RETURNING {', '.join('p.' + c for c in Share.__dataclass_fields__)}",
        {"worker": worker, "lease": lease_s, "limit": limit, "holder": holder})
    return sorted((_share(r) for r in rows), key=lambda s: (s.next_attempt_at, s.id))


def record_attempt(db: Database, share_id: str, worker: str, signature: str,
                   last_valid_block_height: int) -> bool:
    """Before sending: the payment's signature and last valid height (False: claim lost)."""
    return db.execute(
        "UPDATE pending_profit_shares SET inflight_signature = %s,"
        " inflight_last_valid_block_height = %s, updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'sending'",
        (signature, last_valid_block_height, share_id, worker)) == 1


def clear_attempt(db: Database, share_id: str, worker: str, error: str) -> bool:
    """The recorded payment is known not to have paid (failed or expired on chain)."""
    return db.execute(
        "UPDATE pending_profit_shares SET inflight_signature = NULL,"
        " inflight_last_valid_block_height = NULL, last_error = %s, updated_at = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'sending'",
        (error[:500], share_id, worker)) == 1


def mark_paid(db: Database, share_id: str, signature: str) -> bool:
    """The payment landed: a fact from the chain, recorded whoever holds the claim, and kept in
    the append-only profit_share_payments (which the share's status cannot undo)."""
    with db.connection():
        db.execute("INSERT INTO profit_share_payments (share_id, trade_id, signature)"
                   " SELECT id, trade_id, %s FROM pending_profit_shares WHERE id = %s"
                   " ON CONFLICT DO NOTHING", (signature, share_id))
        return _settle_paid(db, share_id, signature)


def payment_made(db: Database, share: Share) -> str | None:
    """The signature of a payment already made for this share or its trade, if any."""
    row = db.fetchone("SELECT signature FROM profit_share_payments WHERE share_id = %s"
                      " OR (trade_id IS NOT NULL AND trade_id = %s) LIMIT 1",
                      (share.id, share.trade_id))
    return row["signature"] if row else None


def replace_share_mac(db: Database, share: Share, new_mac: str) -> bool:
    """Rotation: compare-and-swap a verified IOU MAC to the current key's."""
    return db.execute("UPDATE pending_profit_shares SET share_mac = %s WHERE id = %s"
                      " AND share_mac IS NOT DISTINCT FROM %s AND amount = %s"
                      " AND creator_wallet_address = %s",
                      (new_mac, share.id, share.share_mac, share.amount,
                       share.creator_wallet_address)) == 1


def _settle_paid(db: Database, share_id: str, signature: str) -> bool:
    """The share's own row says paid."""
    return _settle(db, (
        "UPDATE pending_profit_shares SET status = 'paid', paid_tx_signature = %(sig)s,"
        " paid_at = now(), inflight_signature = NULL, inflight_last_valid_block_height = NULL,"
        " claimed_by = NULL, claimed_until = NULL, updated_at = now()"
        " WHERE id = %(id)s AND status IN ('pending', 'sending')"),
        {"sig": signature, "id": share_id})


def mark_retry(db: Database, share_id: str, worker: str, delay_s: float, error: str,
               count_attempt: bool = True) -> bool:
    """Back to pending, due after `delay_s` (a recorded, unresolved payment is kept)."""
    return _settle(db, (
        "UPDATE pending_profit_shares SET status = 'pending',"
        " attempts = attempts + %(inc)s, last_error = %(error)s,"
        " next_attempt_at = now() + make_interval(secs => %(delay)s),"
        " claimed_by = NULL, claimed_until = NULL, updated_at = now()"
        " WHERE id = %(id)s AND claimed_by = %(worker)s AND status = 'sending'"),
        {"inc": 1 if count_attempt else 0, "error": error[:500], "delay": delay_s,
         "id": share_id, "worker": worker})


def mark_void(db: Database, share_id: str, worker: str, reason: str,
              count_attempt: bool = False) -> bool:
    """Give the share up; refused while a recorded payment's fate is still unknown."""
    return _settle(db, (
        "UPDATE pending_profit_shares SET status = 'void', void_reason = %(reason)s,"
        " attempts = attempts + %(inc)s,"
        " claimed_by = NULL, claimed_until = NULL, updated_at = now()"
        " WHERE id = %(id)s AND claimed_by = %(worker)s AND status = 'sending'"
        " AND inflight_signature IS NULL"),
        {"reason": reason[:500], "id": share_id, "worker": worker,
         "inc": 1 if count_attempt else 0})


def count_unpaid(db: Database) -> int:
    """Shares not yet paid nor void (the IOU gauge)."""
    row = db.fetchone("SELECT count(*) AS n FROM pending_profit_shares"
                      " WHERE status IN ('pending', 'sending')")
    return int(row["n"]) if row else 0


class ShareWaiter:
    """Waits for shares to reach a status, told by PostgreSQL (LISTEN), not by polling."""

    def __init__(self, dsn: str) -> None:
        self._listener = Listener(dsn, NOTIFY_CHANNEL)

    def wait(self, share_id: str, timeout_s: float, until: Any = None) -> dict[str, Any]:
        """Block until `until(row)` (default: status final) holds; the row, or TimeoutError."""
        done = until or (lambda r: r["status"] in FINAL_STATUSES)

        def check(cur: Any) -> dict[str, Any] | None:
            cur.execute("SELECT * FROM pending_profit_shares WHERE id = %s", (share_id,))
            row = cur.fetchone()
            return dict(row) if row is not None and done(dict(row)) else None

        return self._listener.wait_until(check, timeout_s, f"profit share {share_id} settled")

    def close(self) -> None:
        """Close the listening connection."""
        self._listener.close()
