"""Trading routes: the TradingView webhook, manual trades, and a signal's story.

A webhook is answered only after its signal row is committed (accepted means durable), and
well inside TradingView's 3-second budget: execution goes on in the bot's actor. Refusals
(refused source 403, unknown bot 404, wrong secret 401, rate limited 429, malformed 400)
execute nothing. Nothing is written before the secret is verified: an unauthenticated request
costs a counter (`webhook_unauthenticated_total{reason}`) and a log line without the secret.
An authenticated alert is rate-limited per bot (a leaked secret cannot flood a bot); a
malformed one is recorded as a rejected signal.

When the database is unreachable (refused or lost connection, no pooled connection, or no
answer within INTAKE_DB_BUDGET_S), the bot is authenticated from the secret cache and the alert
goes to the local journal (storage.journal), fsync'd before the answer: 202 `"queued":
"journal"` with the signal id it will keep. While journaled alerts wait, new ones queue behind
them in the journal, so alerts reach the database in arrival order. A bot this process has not
seen, or a journal that cannot take the alert, answers 503.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import gevent

from actors.dispatch import wake_bot
from actors.messages import ReplayJournal
from actors.services import NamedActor, Services
from httpapi.intake_metrics import WEBHOOK_RATE_LIMITED, WEBHOOK_UNAUTHENTICATED
from httpapi.ops_routes import require_admin
from httpapi.router import HttpError, Request, Response, Router
from observability.trading_metrics import SIGNALS, WEBHOOK_LATENCY
from security.owner_requests import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    idempotency_key,
    owner_request_refusal,
)
from security.webhook_auth import (
    SourceIpPolicy,
    authenticate_webhook,
    check_source_ip,
)
from storage.bots import get_bot, upgrade_stored_hash
from storage.journal import DATABASE_UNREACHABLE, JournalRecord, JournalRefused
from storage.secret_cache import secret_fingerprint
from storage.signals import record_rejection, record_signal, signal_story
from storage.wallets import find_wallet
from supervision.token_bucket import KeyedTokenBucket
from trading.alerts import AlertError, Signal, parse_alert
from trading.dedup import signal_hashes

log = logging.getLogger(__name__)

MANUAL_ACTIONS = ("buy", "sell", "close")
MAX_BOT_ID_CHARS = 255  # trading_bots.id is VARCHAR(255): a longer id is no bot's
INTAKE_DB_BUDGET_S = 2.0  # the bot lookup and the insert together; then the journal takes it
JOURNAL_ASK_TIMEOUT_S = 1.0


def add_trading_routes(router: Router, services: Services) -> None:
    """Register the webhook, manual-trade and signal routes."""
    settings = services.settings
    ip_policy = SourceIpPolicy(enabled=settings.tradingview_ip_allowlist,
                               trust_forwarded_for=bool(settings.trusted_proxies),
                               trusted_proxies=tuple(settings.trusted_proxies))
    limiter = KeyedTokenBucket(settings.webhook_bot_rate_per_s, settings.webhook_bot_burst)
    outage = services.outage

    def refuse(outcome: str, status: int, message: str, started: float,
               headers: tuple[tuple[str, str], ...] = ()) -> HttpError:
        SIGNALS.labels(source="webhook", outcome=outcome).inc()
        WEBHOOK_LATENCY.labels(outcome=outcome).observe(time.perf_counter() - started)
        return HttpError(status, message, headers=headers)

    def unauthenticated(reason: str, outcome: str, status: int, message: str,
                        request: Request, started: float) -> HttpError:
        """Count and log a refusal before authentication; nothing goes to the database."""
        WEBHOOK_UNAUTHENTICATED.labels(reason=reason).inc()
        log.warning("webhook refused: %s (from %s)", reason, request.remote_addr[:64],
                    extra={"bot_id": request.params["bot_id"][:64]})
        return refuse(outcome, status, message, started)

    def webhook(request: Request) -> Response:
        started = time.perf_counter()
        bot_id = request.params["bot_id"]
        source = check_source_ip(ip_policy, request.remote_addr,
                                 request.headers.get("x-forwarded-for"))
        if not source.allowed:
            raise unauthenticated("forbidden_source", "forbidden_source", 403,
                                  f"source address refused: {source.reason}", request, started)
        deadline = time.monotonic() + INTAKE_DB_BUDGET_S
        db_up, bot = True, None
        if len(bot_id) <= MAX_BOT_ID_CHARS:
            try:
                with _db_budget(deadline):
                    bot = get_bot(services.db, bot_id)
            except DatabaseUnreachable:
                db_up = False
        if bot is not None:
            stored_hash = bot.webhook_secret_hash
            if outage is not None:
                outage.secrets.remember(bot.id, stored_hash)
        elif db_up:
            raise unauthenticated("unknown_bot", "unknown_bot", 404, "unknown bot", request,
                                  started)
        elif outage is None or not outage.secrets.knows(bot_id):
            raise refuse("unavailable", 503, "database unreachable and this bot is not known"
                         " to this process; the alert is dropped", started)
        else:
            stored_hash = outage.secrets.stored_hash(bot_id)
        secret = request.query.get("secret") or request.headers.get("x-webhook-secret")
        auth = authenticate_webhook(services.ring, bot_id, secret, stored_hash)
        if not auth.ok:
            raise unauthenticated(auth.reason or "webhook_secret_mismatch", "unauthorized", 401,
                                  "wrong or missing webhook secret", request, started)
        if auth.rehashed and db_up and (outage is None or not outage.journal.pending()):
            # bind a legacy hash to its bot / move it to the current key (CAS), within the budget
            with contextlib.suppress(DatabaseUnreachable), _db_budget(deadline):
                stored_hash = upgrade_stored_hash(services.db, bot_id, stored_hash,
                                                  auth.rehashed,
                                                  outage.secrets if outage else None)
        wait_s = limiter.take(bot_id)
        if wait_s:
            WEBHOOK_RATE_LIMITED.inc()
            log.warning("webhook rate limited", extra={"bot_id": bot_id})
            raise refuse("rate_limited", 429,
                         f"more than {limiter.burst} alerts at once or {limiter.rate_per_s:g}"
                         " per second for this bot; this alert is dropped", started,
                         headers=(("Retry-After", str(math.ceil(wait_s))),))
        body_text = request.body.decode("utf-8", "replace")
        try:
            signal = parse_alert(request.body, request.headers.get("content-type", ""))
        except AlertError as exc:
            if db_up:
                record_rejection(services.db, bot_id, "webhook", f"malformed: {exc}", body_text)
            else:
                log.warning("malformed alert not recorded: database unreachable",
                            extra={"bot_id": bot_id})
            raise refuse("malformed", 400, f"malformed alert: {exc}", started) from None
        received_at = time.time()
        hashes = signal_hashes(bot_id, request.body, signal, received_at)
        if db_up and (outage is None or not outage.journal.pending()):
            try:
                with _db_budget(deadline):
                    recorded = record_signal(services.db, bot_id, hashes.primary,
                                             hashes.also_duplicate_of, "webhook", body_text,
                                             signal.as_dict())
            except DatabaseUnreachable:
                db_up = False
            else:
                outcome = "duplicate" if recorded.duplicate else "accepted"
                if not recorded.duplicate:
                    _wake(services, bot_id, recorded.signal_id)
                SIGNALS.labels(source="webhook", outcome=outcome).inc()
                WEBHOOK_LATENCY.labels(outcome=outcome).observe(time.perf_counter() - started)
                log.info("webhook %s", outcome, extra={"signal_id": recorded.signal_id,
                                                       "bot_id": bot_id})
                return Response(200 if recorded.duplicate else 202,
                                {"signal_id": recorded.signal_id, "status": outcome,
                                 "duplicate": recorded.duplicate})
        if outage is None:
            raise refuse("unavailable", 503, "database unreachable; the alert is dropped",
                         started)
        record = JournalRecord(str(uuid.uuid4()), bot_id, hashes.primary,
                               hashes.also_duplicate_of, "webhook", body_text, signal.as_dict(),
                               received_at, secret_fingerprint(stored_hash))
        try:
            outage.journal.append(record)
        except JournalRefused as exc:
            log.error("alert not journaled: %s", exc, extra={"bot_id": bot_id})
            raise refuse("unavailable", 503, f"database unreachable and {exc}; the alert is"
                         " dropped", started) from None
        if db_up:  # queued behind records still waiting: the replay runs now
            _tell_journal(services)
        SIGNALS.labels(source="webhook", outcome="journaled").inc()
        WEBHOOK_LATENCY.labels(outcome="journaled").observe(time.perf_counter() - started)
        log.info("webhook journaled", extra={"signal_id": record.signal_id, "bot_id": bot_id})
        return Response(202, {"signal_id": record.signal_id, "status": "queued",
                              "queued": "journal", "duplicate": False})

    def manual_trade(request: Request) -> Response:
        owner_signature = request.headers.get(SIGNATURE_HEADER)
        if owner_signature is None:
            require_admin(services, request)
        bot = get_bot(services.db, request.params["bot_id"])
        wallet = None if bot is None else find_wallet(services.db, bot.wallet_address)
        if owner_signature is not None:  # the owner's own request: nothing else authenticates
            refusal = "owner_signature_mismatch" if bot is None or wallet is None else (
                owner_request_refusal(wallet.address, bot.id,
                                      request.headers.get(TIMESTAMP_HEADER), owner_signature,
                                      request.body, time.time()))
            if refusal is not None:
                WEBHOOK_UNAUTHENTICATED.labels(reason=refusal).inc()
                raise HttpError(401, f"manual trade refused: {refusal}")
        if bot is None:
            raise HttpError(404, "unknown bot")
        if owner_signature is None and wallet is not None and wallet.is_v3:
            raise HttpError(403, "the bot's wallet is V3: a manual trade needs its owner's "
                            f"signature ({SIGNATURE_HEADER}, {TIMESTAMP_HEADER}); the admin "
                            "token alone trades only legacy bots")
        body = request.json()
        if not isinstance(body, dict) or body.get("action") not in MANUAL_ACTIONS:
            raise HttpError(400, f"action must be one of {', '.join(MANUAL_ACTIONS)}")
        use_swift = body.get("useSwift")
        if use_swift is not None and not isinstance(use_swift, bool):
            raise HttpError(400, "useSwift must be true or false")
        parsed = _manual_signal(body["action"]).as_dict() | {"use_swift": use_swift}
        key = request.headers.get("idempotency-key") or uuid.uuid4().hex
        signal_hash = (idempotency_key(bot.id, owner_signature) if owner_signature is not None
                       else f"manual:{bot.id}:{key}"[:128])
        recorded = record_signal(services.db, bot.id, signal_hash, (),
                                 "manual", None, parsed)
        if not recorded.duplicate:
            _wake(services, bot.id, recorded.signal_id)
        SIGNALS.labels(source="manual", outcome="duplicate" if recorded.duplicate
                       else "accepted").inc()
        return Response(200 if recorded.duplicate else 202,
                        {"signal_id": recorded.signal_id, "duplicate": recorded.duplicate})

    def show_signal(request: Request) -> Response:
        require_admin(services, request)
        story = signal_story(services.db, request.params["signal_id"])
        if story is None:
            raise HttpError(404, "unknown signal")
        return Response(200, story)

    router.add("POST", "/api/webhook/tradingview/{bot_id}", webhook)
    router.add("POST", "/api/trading-bots/{bot_id}/manual-trade", manual_trade)
    router.add("GET", "/api/signals/{signal_id}", show_signal)


def _manual_signal(action: str) -> Signal:
    """A manual action as a signal: buy/sell go to that side, close flattens."""
    if action == "close":
        return Signal("sell", Decimal(0), Decimal(0), Decimal(1), None, None, None, None)
    return Signal(action, Decimal(0), None, None, None, None, None, None)


class DatabaseUnreachable(Exception):
    """The database refused or lost the intake's connection, or did not answer in time."""


@contextlib.contextmanager
def _db_budget(deadline: float) -> Iterator[None]:
    """Run intake queries within what is left of INTAKE_DB_BUDGET_S (TradingView waits 3 s):
    an unreachable or slower database raises DatabaseUnreachable and the alert is journaled."""
    timeout = gevent.Timeout(max(0.001, deadline - time.monotonic()))
    timeout.start()
    try:
        yield
    except gevent.Timeout as exc:
        if exc is not timeout:
            raise
        raise DatabaseUnreachable("no answer within the intake budget") from None
    except DATABASE_UNREACHABLE as exc:
        raise DatabaseUnreachable(type(exc).__name__) from None
    finally:
        timeout.cancel()


def _tell_journal(services: Services) -> None:
    """Ask for a replay now; its timer replays within a second anyway."""
    try:
        NamedActor(services, "intake_journal", JOURNAL_ASK_TIMEOUT_S).tell(ReplayJournal())
    except Exception as exc:
        log.warning("journal replay not requested: %s", type(exc).__name__)


def _wake(services: Services, bot_id: str, signal_id: str) -> None:
    """Wake the bot's actor, off the request (the answer never waits for an actor to start, or
    for the NOTIFY to the workers); the row is committed, so a failure only delays it."""
    gevent.spawn(_wake_now, services, bot_id, signal_id)


def _wake_now(services: Services, bot_id: str, signal_id: str) -> None:
    """The wake-up itself, in its own greenlet: a failure is logged, the signal waits."""
    try:
        wake_bot(services, bot_id, signal_id)
    except Exception:
        log.exception("could not wake the bot actor; the signal waits in its backlog",
                      extra={"signal_id": signal_id, "bot_id": bot_id})
