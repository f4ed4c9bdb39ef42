"""Signal rows: the durable intake of alerts, their deduplication, claiming and outcome.

A webhook is acknowledged only after its row is committed (accepted means durable); a bot
actor claims a row (accepted -> processing) before acting on it, so a signal is never acted on
twice even when it is dispatched twice.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg2.extras import Json

from storage.bot_leases import HELD_AT_EPOCH
from storage.bots import BOT_COLUMNS, Bot, bot_from_row
from storage.database import Database
from storage.notify import Listener
from storage.wallets import SIGNING_COLUMNS, SigningRows, signing_rows_of


class SignalStatus(StrEnum):
    """webhook_signals.status: where a signal is, from intake to how it ended."""

    ACCEPTED = "accepted"  # durable, waiting in its bot's backlog
    PROCESSING = "processing"  # claimed by its bot's actor
    DONE = "done"  # every order completed
    FAILED = "failed"
    PARTIAL = "partial"  # some of it traded, or its outcome is partly unknown
    SKIPPED = "skipped"  # not run (no signer, price deviation, bot paused)
    REJECTED = "rejected"  # authenticated but refused at intake (malformed)
    EXPIRED = "expired"  # journaled during an outage, too old when replayed


PENDING_LIMIT = 1000
FINISHED_CHANNEL = "signal_finished"
ACCEPTED_CHANNEL = "signal_accepted"  # payload: the bot id; a running daemon wakes that bot
FINAL_STATUSES = (SignalStatus.DONE, SignalStatus.FAILED, SignalStatus.PARTIAL,
                  SignalStatus.SKIPPED, SignalStatus.REJECTED, SignalStatus.EXPIRED)
_BOT_PREFIX = "bot__"  # the claimed signal's bot columns, apart from the signal's own
_BOT_NAMES = tuple(name.strip() for name in BOT_COLUMNS.split(","))
_BOT_FIELDS = ", ".join(f"b.{name} AS {_BOT_PREFIX}{name}" for name in _BOT_NAMES)


@dataclass(frozen=True)
class Recorded:
    """Where an alert ended up: its signal id, and whether it was a duplicate of that one."""

    signal_id: str
    duplicate: bool


def record_signal(db: Database, bot_id: str, primary_hash: str, duplicate_hashes: tuple[str, ...],
                  source: str, raw_body: str | None, parsed: dict[str, Any],
                  parent_signal_id: str | None = None, *, signal_id: str | None = None,
                  received_at: float | None = None,
                  settled: tuple[str, str] | None = None) -> Recorded:
    """Insert an accepted signal, or return the earlier one it duplicates.

    The journal's replay gives the id and receipt time (unix seconds) assigned at intake, and
    `settled` = (status, reason) for an alert that must not run (expired, rejected); replaying
    a record again finds its own row as the "earlier" one (`signal_id` comes back unchanged).
    """
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM webhook_signals WHERE signal_hash = ANY(%s) ORDER BY seq LIMIT 1",
            ([primary_hash, *duplicate_hashes],))
        earlier = cur.fetchone()
        if earlier:
            return Recorded(earlier[0], True)
        status, reason = settled or (None, None)
        cur.execute(
            "INSERT INTO webhook_signals (id, trading_bot_id, signal_hash, source, raw_body,"
            " parsed, parent_signal_id, received_at, status, status_reason, processed_at)"
            " VALUES (COALESCE(%s, gen_random_uuid()::text), %s, %s, %s, %s, %s, %s,"
            " COALESCE(to_timestamp(%s), now()), COALESCE(%s, 'accepted'), %s,"
            " CASE WHEN %s IS NOT NULL THEN now() END)"
            " ON CONFLICT (signal_hash) DO NOTHING RETURNING id",
            (signal_id, bot_id, primary_hash, source, raw_body, Json(parsed), parent_signal_id,
             received_at, status, reason, status))
        row = cur.fetchone()
        if row:
            return Recorded(row[0], False)
        cur.execute("SELECT id FROM webhook_signals WHERE signal_hash = %s", (primary_hash,))
        return Recorded(cur.fetchone()[0], True)  # lost a race with the same alert


def record_flatten_signals(db: Database, bot_ids: list[str], stop_id: str, scope: str) -> int:
    """One close signal per bot for a stop-and-flatten (once per stop), and a wake-up for each.

    Runs in the caller's transaction, so the stop and its flatten orders commit together.
    """
    parsed = {"action": "sell", "contracts": "0", "new_position": "0", "prev_position": "1",
              "kind": "close", "target_side": "flat",
              "flatten": {"stop_id": stop_id, "scope": scope}}
    made = 0
    for bot_id in bot_ids:
        row = db.fetchone(
            "INSERT INTO webhook_signals (trading_bot_id, signal_hash, source, parsed)"
            " VALUES (%s, %s, 'flatten', %s) ON CONFLICT (signal_hash) DO NOTHING RETURNING id",
            (bot_id, f"flatten:{stop_id}:{bot_id}", Json(parsed)))
        if row is not None:
            made += 1
            db.execute("SELECT pg_notify(%s, %s)", (ACCEPTED_CHANNEL, bot_id))
    return made


def record_rejection(db: Database, bot_id: str, source: str, reason: str,
                     raw_body: str | None) -> str:
    """Record an authenticated alert that was refused (malformed) so the refusal is visible.

    PostgreSQL text cannot hold NUL: each becomes U+FFFD, in the body and in the reason.
    Unauthenticated requests are never recorded (the intake counts them in a metric).
    """
    if raw_body is not None:
        raw_body = raw_body.replace("\x00", "\ufffd")
    row = db.fetchone(
        "INSERT INTO webhook_signals (trading_bot_id, signal_hash, source, raw_body, status,"
        " error, processed_at) VALUES (%s, %s, %s, %s, 'rejected', %s, now()) RETURNING id",
        (bot_id, f"rejected:{uuid.uuid4()}", source, raw_body, reason.replace("\x00", "\ufffd")))
    assert row is not None
    return row["id"]


def requeue_signal(db: Database, signal_id: str) -> None:
    """Put a claimed signal back in its bot's backlog, in its place (it keeps its sequence)."""
    db.execute("UPDATE webhook_signals SET status = 'accepted' WHERE id = %s"
               " AND status = 'processing'", (signal_id,))


def reopen_interrupted_flip(db: Database, signal_id: str, job_id: str, stale_s: float) -> bool:
    """Put back in its bot's backlog (and wake the bot) a flip a restart cut while its close was
    out, before its open left: the close went to reconciliation and the signal ended
    interrupted. Only as retry job `job_id` ends done with every other job of the signal done
    (its close traded, the open half may follow), while the flip is younger than `stale_s` and
    the bot has run no newer signal; True when it was put back."""
    row = db.fetchone(
        "UPDATE webhook_signals s SET status = 'accepted', processed_at = NULL"
        " WHERE s.id = %(id)s AND s.status = 'failed' AND s.parsed->>'kind' = 'flip'"
        " AND s.outcome->>'reconciling' IS NOT NULL"
        " AND s.received_at > now() - make_interval(secs => %(stale)s)"
        " AND NOT EXISTS (SELECT 1 FROM bot_trades t WHERE t.signal_id = s.id"
        "  AND NOT t.reduce_only)"
        " AND NOT EXISTS (SELECT 1 FROM trade_retry_queue q WHERE q.signal_id = s.id"
        "  AND q.status <> 'done' AND q.id <> %(job)s)"
        " AND NOT EXISTS (SELECT 1 FROM webhook_signals n WHERE n.trading_bot_id ="
        "  s.trading_bot_id AND n.seq > s.seq AND n.status NOT IN ('accepted', 'rejected'))"
        " RETURNING s.trading_bot_id", {"id": signal_id, "job": job_id, "stale": stale_s})
    if row is None:
        return False
    db.execute("SELECT pg_notify(%s, %s)", (ACCEPTED_CHANNEL, row["trading_bot_id"]))
    return True


def signal_age_s(db: Database, signal_id: str) -> float:
    """Seconds since the signal was received."""
    row = db.fetchone("SELECT extract(epoch FROM now() - received_at) AS age"
                      " FROM webhook_signals WHERE id = %s", (signal_id,))
    return float(row["age"]) if row else 0.0


def superseded(db: Database, bot_id: str, signal_id: str) -> bool:
    """Whether the bot has run a signal that arrived after this one (its retries are stale)."""
    row = db.fetchone(
        "SELECT EXISTS (SELECT 1 FROM webhook_signals s, webhook_signals j"
        " WHERE j.id = %s AND s.trading_bot_id = %s AND s.seq > j.seq"
        " AND s.status NOT IN ('accepted', 'rejected', 'expired')) AS newer", (signal_id, bot_id))
    return bool(row and row["newer"])


def finish_signal(db: Database, signal_id: str, status: str, outcome: dict[str, Any],
                  reason: str | None = None) -> None:
    """Record how a claimed signal ended: a final SignalStatus (ValueError otherwise)."""
    final = SignalStatus(status)
    if final not in FINAL_STATUSES:
        raise ValueError(f"not a final signal status: {final}")
    db.execute(
        "UPDATE webhook_signals SET status = %s, outcome = %s, status_reason = %s,"
        " processed_at = now() WHERE id = %s; SELECT pg_notify(%s, %s)",
        (final.value, Json(outcome), reason, signal_id, FINISHED_CHANNEL, signal_id))


@dataclass(frozen=True)
class SignalRow:
    """A signal as its bot runs it: claimed now, or left `processing` by a crash."""

    id: str
    source: str  # webhook, fanout, manual, ...
    parsed: dict[str, Any] | None  # the alert as parsed (kind, side, size, ...)
    snapshot: dict[str, Any] | None  # a source's market snapshot, shared by its copies
    received_at: datetime
    bot: Bot | None = None  # the bot as it is at the claim (claim_next_many only)
    more_waiting: bool = False  # more accepted signals behind this one (claim_next_many only)
    # the bot's grant and its wallet's envelopes as read by the claim (claim_next_many only): the
    # signal's one read of them before its key is opened (custody.signing_keys)
    signing: SigningRows | None = field(default=None, repr=False)


_SIGNAL_COLUMNS = "id, source, parsed, snapshot, received_at"


def _signal_row(row: dict[str, Any], **extra: Any) -> SignalRow:
    return SignalRow(**{name: row[name] for name in _SIGNAL_COLUMNS.split(", ")}, **extra)


def interrupted_signals(db: Database, bot_id: str) -> list[SignalRow]:
    """Signals of a bot left `processing` by a crash (only the bot's own actor claims them)."""
    return [_signal_row(row) for row in db.fetchall(
        f"SELECT {_SIGNAL_COLUMNS} FROM webhook_signals WHERE trading_bot_id = %s AND"
        " status = 'processing' ORDER BY seq", (bot_id,))]


def pending_signals(db: Database, bot_id: str) -> list[str]:
    """Accepted, unclaimed signals of one bot, oldest first (the bot's backlog after a restart)."""
    rows = db.fetchall(
        "SELECT id FROM webhook_signals WHERE trading_bot_id = %s AND status = 'accepted'"
        " ORDER BY seq LIMIT %s", (bot_id, PENDING_LIMIT))
    return [r["id"] for r in rows]


def signal_story(db: Database, signal_id: str) -> dict[str, Any] | None:
    """A signal with its trades, and each subscriber copy with its trades."""
    signal = db.fetchone(
        "SELECT id, trading_bot_id, source, status, status_reason, error, parsed, outcome,"
        " received_at, processed_at, parent_signal_id FROM webhook_signals WHERE id = %s",
        (signal_id,))
    if signal is None:
        return None
    ids = [signal_id] + [r["id"] for r in db.fetchall(
        "SELECT id FROM webhook_signals WHERE parent_signal_id = %s ORDER BY seq",
        (signal_id,))]
    trades = db.fetchall(
        "SELECT id, signal_id, trading_bot_id, market, side, size, filled_size, price,"
        " reduce_only, status, execution_method, swift_order_id, swift_status,"
        " fallback_reason, error_message, tx_signature, auction_duration_ms, price_improvement,"
        " created_at FROM bot_trades WHERE signal_id = ANY(%s) ORDER BY created_at", (ids,))
    copies = db.fetchall(
        "SELECT id, trading_bot_id, status, status_reason, outcome, processed_at"
        " FROM webhook_signals WHERE parent_signal_id = %s ORDER BY seq", (signal_id,))
    story = dict(signal)
    story["trades"] = [t for t in trades if t["signal_id"] == signal_id]
    story["subscribers"] = [
        {**copy, "trades": [t for t in trades if t["signal_id"] == copy["id"]]}
        for copy in copies]
    return json.loads(json.dumps(story, default=str))


@dataclass(frozen=True)
class SubscriberCopy:
    """A subscriber's copy of a source signal, with the venue account it trades from."""

    bot_id: str
    copy_id: str
    agent_public_key: str
    drift_subaccount_id: int


def copy_to_subscribers(db: Database, signal_id: str, source_bot_id: str,
                        snapshot: dict[str, Any]) -> list[SubscriberCopy]:
    """Store the source signal's snapshot and create (once) a copy for every active subscriber
    bot of its published bot, in one transaction; returns every copy with the venue account it
    trades (bot id, copy id, agent public key, sub-account), in subscription order.

    A copy's hash derives from the source's hash and the bot, so routing the same source
    signal again (after a restart) finds the copies instead of making new ones; a snapshot
    stored earlier is kept, so copies made late still trade against the first one.
    """
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "WITH src AS (UPDATE webhook_signals SET snapshot = COALESCE(snapshot, %(snap)s)"
            "  WHERE id = %(sid)s RETURNING id, signal_hash, parsed, snapshot),"
            " subs AS (SELECT b.id AS bot_id, s.created_at, s.max_price_deviation_bps"
            "  FROM published_bots p"
            "  JOIN subscriptions s ON s.published_bot_id = p.id AND s.is_active"
            "  JOIN trading_bots b ON b.id = s.subscriber_bot_id"
            "   AND (b.is_active OR b.paused_by = 'system')"  # its closes still run
            "  WHERE p.trading_bot_id = %(bot)s AND p.is_active)"
            " INSERT INTO webhook_signals (trading_bot_id, signal_hash, source, parsed,"
            "  parent_signal_id, snapshot)"
            " SELECT subs.bot_id,"
            "  encode(sha256(convert_to(src.signal_hash || ':' || subs.bot_id, 'UTF8')), 'hex'),"
            "  'fanout', src.parsed || CASE WHEN subs.max_price_deviation_bps IS NULL"
            "   THEN '{}'::jsonb ELSE jsonb_build_object('max_deviation_bps',"
            "   subs.max_price_deviation_bps) END,"
            "  src.id, src.snapshot FROM src, subs ORDER BY subs.created_at"
            " ON CONFLICT (signal_hash) DO NOTHING",
            {"snap": Json(snapshot), "sid": signal_id, "bot": source_bot_id})
        cur.execute(
            "SELECT c.trading_bot_id AS bot_id, c.id AS copy_id, w.agent_public_key,"
            " b.drift_subaccount_id FROM webhook_signals c"
            " JOIN trading_bots b ON b.id = c.trading_bot_id"
            " JOIN wallets w ON w.address = b.wallet_address"
            " WHERE c.parent_signal_id = %s ORDER BY c.seq", (signal_id,))
        return [SubscriberCopy(bot_id, copy_id, key, int(sub_account))
                for bot_id, copy_id, key, sub_account in cur.fetchall()]


def claim_next_many(db: Database, claims: list[tuple[str, int | None]],
                    holder: str) -> list[SignalRow | None]:
    """Take each bot's oldest accepted signal for processing, for several bots (bot id, lease
    epoch) in one statement (a fan-out's copies are claimed by hundreds of bot actors at once),
    answered in order: None when a bot has none, or when `holder` does not hold its lease (at
    that epoch; None: any epoch of ours). Each claimed row comes with the bot's row as it is
    now, whether more accepted signals wait behind it, and the rows its key is opened from (one
    round trip for what the signal runs on, and for knowing whether to claim again after it).

    Only the bot's own actor in the lease holder claims its signals, so the oldest is never
    skipped; SKIP LOCKED keeps a concurrent claimer from waiting on it; the claim itself is
    the lease check. Each bot once (a bot's two claims would take the same row): ValueError
    otherwise."""
    bots = [bot for bot, _ in claims]
    if len(set(bots)) != len(bots):
        raise ValueError("one claim per bot and statement")
    rows = db.fetchall(
        "WITH r AS (SELECT * FROM unnest(%(bots)s::text[], %(epochs)s::bigint[])"
        "  AS r(bot, epoch)),"
        # each bot's pick is made once (materialized): a locking subquery under a join may
        # be run again per row
        " picked AS MATERIALIZED (SELECT pick.id FROM r CROSS JOIN LATERAL ("
        "  SELECT id FROM webhook_signals WHERE trading_bot_id = r.bot AND status = 'accepted'"
        f"  AND {HELD_AT_EPOCH.format(bot='r.bot', epoch='r.epoch')}"
        "  ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) AS pick),"
        " claimed AS (UPDATE webhook_signals u SET status = 'processing' FROM picked"
        "  WHERE u.id = picked.id AND u.status = 'accepted'"
        f" RETURNING {', '.join(f'u.{c}' for c in _SIGNAL_COLUMNS.split(', '))},"
        " u.trading_bot_id)"
        f" SELECT claimed.*, {_BOT_FIELDS}, {SIGNING_COLUMNS}, EXISTS (SELECT 1"
        "  FROM webhook_signals s WHERE s.trading_bot_id = claimed.trading_bot_id"
        "  AND s.status = 'accepted' AND s.id <> claimed.id) AS more_waiting"
        " FROM claimed LEFT JOIN trading_bots b ON b.id = claimed.trading_bot_id"
        " LEFT JOIN wallets w ON w.address = b.wallet_address",
        {"bots": bots, "epochs": [epoch for _, epoch in claims], "holder": holder})
    by_bot = {row["trading_bot_id"]: row for row in rows}
    return [_claimed(by_bot[bot]) if bot in by_bot else None for bot in bots]


def _claimed(row: dict[str, Any]) -> SignalRow:
    fields = {name: row[f"{_BOT_PREFIX}{name}"] for name in _BOT_NAMES}
    return _signal_row(row, bot=bot_from_row(fields) if fields["id"] is not None else None,
                       more_waiting=row["more_waiting"], signing=signing_rows_of(row))


class SignalWaiter:
    """Waits for signals to finish (used by `quantumvault demo`, the benchmarks and tests), told
    by NOTIFY: `finish_signal` names the signal it finished, the only way a claimed signal ends."""

    def __init__(self, dsn: str) -> None:
        self._listener = Listener(dsn, FINISHED_CHANNEL)

    def wait(self, signal_ids: list[str], timeout_s: float) -> dict[str, str]:
        """Block until every signal is final; returns id -> status. TimeoutError otherwise.

        The rows are read again only once every signal not final at the last read has been
        named by a notification: waiting on hundreds of copies is a few queries, not one per
        copy that finishes (which would load the daemon being measured)."""
        wanted = set(signal_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = self._listener.query(
                "SELECT id, status FROM webhook_signals WHERE id = ANY(%s)", (list(wanted),))
            final = {r["id"]: r["status"] for r in statuses if r["status"] in FINAL_STATUSES}
            if len(final) == len(wanted):
                return final
            pending = wanted - final.keys()
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(wanted)} signal(s) final not reached in"
                                       f" {timeout_s}s ({len(pending)} not final)")
                pending -= set(self._listener.next_payloads(remaining))

    def close(self) -> None:
        """Close the listening connection."""
        self._listener.close()
