"""Trading routes: the TradingView webhook, manual trades, and a signal's story.

A webhook is answered only after its signal row is committed (accepted means durable), and
well inside TradingView's 3-second budget: execution goes on in the bot's actor. Refusals
(refused source 403, unknown bot 404, wrong secret 401, rate limited 429, malformed 400)
execute nothing. Nothing is written before the secret is verified: an unauthenticated request
costs a counter (`webhook_unauthenticated_total{reason}`) and a log line without the secret.
An authenticated alert is rate-limited per bot (a leaked secret cannot flood a bot); a
malformed one is recorded as a rejected signal.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from decimal import Decimal

from actors.dispatch import wake_bot
from actors.services import Services
from httpapi.intake_metrics import WEBHOOK_RATE_LIMITED, WEBHOOK_UNAUTHENTICATED
from httpapi.ops_routes import require_admin
from httpapi.rate_limit import KeyedTokenBucket
from httpapi.router import HttpError, Request, Response, Router
from observability.trading_metrics import SIGNALS, WEBHOOK_LATENCY
from security.webhook_auth import SourceIpPolicy, check_source_ip, verify_webhook_secret
from storage.bots import get_bot
from storage.signals import record_rejection, record_signal, signal_story
from trading.alerts import AlertError, Signal, parse_alert
from trading.dedup import signal_hashes

log = logging.getLogger(__name__)

MANUAL_ACTIONS = ("buy", "sell", "close")
MAX_BOT_ID_CHARS = 255  # trading_bots.id is VARCHAR(255): a longer id is no bot's


def add_trading_routes(router: Router, services: Services) -> None:
    """Register the webhook, manual-trade and signal routes."""
    settings = services.settings
    ip_policy = SourceIpPolicy(enabled=settings["TRADINGVIEW_IP_ALLOWLIST"],
                               trust_forwarded_for=bool(settings["TRUSTED_PROXIES"]),
                               trusted_proxies=tuple(settings["TRUSTED_PROXIES"]))
    limiter = KeyedTokenBucket(settings["WEBHOOK_BOT_RATE_PER_S"], settings["WEBHOOK_BOT_BURST"])

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
        bot = get_bot(services.db, bot_id) if len(bot_id) <= MAX_BOT_ID_CHARS else None
        if bot is None:
            raise unauthenticated("unknown_bot", "unknown_bot", 404, "unknown bot", request,
                                  started)
        secret = request.query.get("secret") or request.headers.get("x-webhook-secret")
        auth = verify_webhook_secret(services.ring.webhook_peppers(), secret,
                                     bot.webhook_secret_hash,
                                     current_key_id=services.ring.current_key_id)
        if not auth.ok:
            raise unauthenticated(auth.reason or "webhook_secret_mismatch", "unauthorized", 401,
                                  "wrong or missing webhook secret", request, started)
        wait_s = limiter.take(bot.id)
        if wait_s:
            WEBHOOK_RATE_LIMITED.inc()
            log.warning("webhook rate limited", extra={"bot_id": bot.id})
            raise refuse("rate_limited", 429,
                         f"more than {limiter.burst} alerts at once or {limiter.rate_per_s:g}"
                         " per second for this bot; this alert is dropped", started,
                         headers=(("Retry-After", str(math.ceil(wait_s))),))
        body_text = request.body.decode("utf-8", "replace")
        try:
            signal = parse_alert(request.body, request.headers.get("content-type", ""))
        except AlertError as exc:
            record_rejection(services.db, bot.id, "webhook", f"malformed: {exc}", body_text)
            raise refuse("malformed", 400, f"malformed alert: {exc}", started) from None
        hashes = signal_hashes(bot.id, request.body, signal, time.time())
        recorded = record_signal(services.db, bot.id, hashes.primary, hashes.also_duplicate_of,
                                 "webhook", body_text, signal.as_dict())
        outcome = "duplicate" if recorded.duplicate else "accepted"
        if not recorded.duplicate:
            _wake(services, bot.id, recorded.signal_id)
        SIGNALS.labels(source="webhook", outcome=outcome).inc()
        WEBHOOK_LATENCY.labels(outcome=outcome).observe(time.perf_counter() - started)
        log.info("webhook %s", outcome, extra={"signal_id": recorded.signal_id,
                                               "bot_id": bot.id})
        return Response(200 if recorded.duplicate else 202,
                        {"signal_id": recorded.signal_id, "status": outcome,
                         "duplicate": recorded.duplicate})

    def manual_trade(request: Request) -> Response:
        require_admin(services, request)
        bot = get_bot(services.db, request.params["bot_id"])
        if bot is None:
            raise HttpError(404, "unknown bot")
        body = request.json()
        if not isinstance(body, dict) or body.get("action") not in MANUAL_ACTIONS:
            raise HttpError(400, f"action must be one of {', '.join(MANUAL_ACTIONS)}")
        use_swift = body.get("useSwift")
        if use_swift is not None and not isinstance(use_swift, bool):
            raise HttpError(400, "useSwift must be true or false")
        parsed = _manual_signal(body["action"]).as_dict() | {"use_swift": use_swift}
        key = request.headers.get("idempotency-key") or uuid.uuid4().hex
        recorded = record_signal(services.db, bot.id, f"manual:{bot.id}:{key}"[:128], (),
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


def _wake(services: Services, bot_id: str, signal_id: str) -> None:
    """Wake the bot's actor; the row is committed, so a failure here only delays it."""
    try:
        wake_bot(services, bot_id, signal_id)
    except Exception:
        log.exception("could not wake the bot actor; the signal waits in its backlog",
                      extra={"signal_id": signal_id, "bot_id": bot_id})
