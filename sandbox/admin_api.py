"""The sandbox's own control surface under /sandbox/: faucet, faults, liquidity, oracle, clock,
stats and read-only views. Not part of any real venue; clients use it only in sandbox mode."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from driftpy.constants.numeric_constants import PRICE_PRECISION, QUOTE_PRECISION
from solana.constants import LAMPORTS_PER_SOL
from solders.pubkey import Pubkey

from httpapi.wsgi import Request, Response
from sandbox.exchange import Exchange


class BadRequest(ValueError):
    """A malformed admin request (answered 400 with the reason)."""


def _body(req: Request) -> dict[str, Any]:
    if not req.body:
        return {}
    try:
        body = req.json()
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def _authority(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(str(value))
    except Exception as exc:
        raise BadRequest("authority must be a base58 public key") from exc


def _units(body: dict[str, Any], name: str, precision: int) -> int:
    """``name`` in human units (float ok) or ``name_raw`` in base units."""
    if f"{name}_raw" in body:
        return int(body[f"{name}_raw"])
    value = body.get(name, 0)
    if not isinstance(value, int | float) or value < 0:
        raise BadRequest(f"{name} must be a non-negative number")
    return round(float(value) * precision)


def faucet(ex: Exchange, req: Request) -> Response:
    """POST /sandbox/faucet {"authority", "quote", "wallet_quote"?, "sol"?, "num_orders"?,
    "signed_msg_user_orders"?, "user"?, "delegate"?}: a funded User (sub-account 0) plus
    its SignedMsgUserOrders account.

    Amounts are human units (USDC, SOL) or ``*_raw`` base units. ``"user": false`` funds only
    the wallet, for clients that create their accounts with the real instructions."""
    body = _body(req)
    authority = _authority(body.get("authority"))
    quote = _units(body, "quote", QUOTE_PRECISION)
    wallet = _units(body, "wallet_quote", QUOTE_PRECISION)
    sol = _units(body, "sol", LAMPORTS_PER_SOL) if "sol" in body or "sol_raw" in body \
        else 10_000_000_000
    num_orders = int(body.get("num_orders", 8))
    if not 1 <= num_orders <= 128:
        raise BadRequest("num_orders must be within 1..128")
    with ex.lock:
        user = ex.faucet(authority, quote, wallet_quote=wallet, sol_lamports=sol,
                         num_orders=num_orders, create_user=body.get("user", True) is not False)
        if body.get("signed_msg_user_orders", True) is False:
            ex.signed_msg.pop(authority, None)
        if user is not None and body.get("delegate"):
            user.delegate = _authority(body["delegate"])
            user.touch(ex.slot)
        token = ex.token_account(authority)
        return Response(200, {
            "authority": str(authority),
            "user": str(user.address) if user else None,
            "signed_msg_user_orders": str(ex.signed_msg[authority].address)
            if authority in ex.signed_msg else None,
            "quote_token_account": str(token.address),
            "quote_balance": user.quote_balance if user else 0,
            "wallet_quote": token.amount,
            "lamports": ex.lamports.get(authority, 0),
        })


def faults(ex: Exchange, req: Request) -> Response:
    """GET shows, POST updates ({"clear": true} resets first), DELETE clears."""
    if req.method == "DELETE":
        ex.faults.clear()
    elif req.method == "POST":
        try:
            ex.faults.update(_body(req))
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from exc
    return Response(200, ex.faults.as_dict())


def liquidity(ex: Exchange, req: Request) -> Response:
    """GET shows; POST {"market_index"?: int|null, "mode": full|partial|none, "fraction"?}."""
    if req.method == "POST":
        body = _body(req)
        try:
            idx = body.get("market_index")
            ex.liquidity.set(None if idx is None else int(idx), str(body.get("mode", "full")),
                             float(body.get("fraction", 0.5)))
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from exc
    return Response(200, ex.liquidity.as_dict())


def oracle(ex: Exchange, req: Request) -> Response:
    """GET prices (all or ?market_index=); POST {"market_index", "price"|"price_raw", "freeze"?}."""
    if req.method == "POST":
        body = _body(req)
        idx = int(body.get("market_index", -1))
        if idx not in ex.markets:
            raise BadRequest("unknown market_index")
        with ex.lock:
            ex.oracles.set_price(idx, _units(body, "price", PRICE_PRECISION),
                                 freeze=bool(body.get("freeze", False)))
    wanted = req.query.get("market_index")
    prices = ex.oracles.prices()
    if wanted is not None:
        idx = int(wanted)
        if idx not in prices:
            raise BadRequest("unknown market_index")
        prices = {idx: prices[idx]}
    return Response(200, {"slot": ex.slot, "prices": {
        str(i): {"price": p, "symbol": ex.markets[i].symbol} for i, p in prices.items()}})


def config(ex: Exchange, req: Request) -> Response:
    """GET shows, POST changes ExchangeConfig fields (maker_edge_bps, slippage_bps, ...)."""
    if req.method == "POST":
        try:
            ex.update_config(_body(req))
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from exc
    return Response(200, asdict(ex.config))


def step(ex: Exchange, req: Request) -> Response:
    """POST /sandbox/step {"slots": n}: advance the clock now (tests, demos)."""
    n = int(_body(req).get("slots", 1))
    if not 0 <= n <= 10_000:
        raise BadRequest("slots must be within 0..10000")
    return Response(200, {"slot": ex.clock.step(n)})


def stats(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/stats (``rpc_calls``: JSON-RPC calls per method, monotonic)."""
    with ex.lock:
        snap = ex.stats.snapshot()
        snap["slot"] = ex.slot
        snap["pending_swift_orders"] = len(ex.pending)
    return Response(200, snap)


def user(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/user?authority=...[&sub_account_id=N]: a readable summary of a User
    account (sub-account 0 by default)."""
    info = ex.describe_user(_authority(req.query.get("authority")),
                            int(req.query.get("sub_account_id") or 0))
    if info is None:
        return Response(404, {"error": "no such user"})
    return Response(200, info)


def fills(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/fills[?authority=][&sub_account_id=]: the fill log."""
    who = req.query.get("authority")
    sub_raw = req.query.get("sub_account_id")
    try:
        sub = int(sub_raw) if sub_raw not in (None, "") else None
    except ValueError as exc:
        raise BadRequest("sub_account_id must be an integer") from exc
    with ex.lock:
        rows = [f for f in ex.fill_log if (who is None or f["authority"] == who)
                and (sub is None or f["sub_account_id"] == sub)]
    return Response(200, {"fills": rows})


def swift_posts(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/swift-posts[?since=<unix time>]: every POST /orders, oldest first:
    {"at", "slot", "authority", "status", "message", "error", "answered_at"}."""
    since_raw = req.query.get("since")
    try:
        since = float(since_raw) if since_raw not in (None, "") else None
    except ValueError as exc:
        raise BadRequest("since must be a number (unix time)") from exc
    with ex.lock:
        rows = [dict(r) for r in ex.swift_posts if since is None or r["at"] > since]
    return Response(200, {"posts": rows})


def rpc_log(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/rpc-log?since=<unix time>: each JSON-RPC call after it, {"at", "method"}
    (wall time of arrival), so a benchmark can count the calls made before an event."""
    try:
        since = float(req.query.get("since") or 0)
    except ValueError as exc:
        raise BadRequest("since must be a number (unix time)") from exc
    return Response(200, {"calls": ex.stats.rpc_calls_since(since)})


def state(ex: Exchange, req: Request) -> Response:
    """GET /sandbox/state: slot, seed and a digest of all account bytes (determinism checks)."""
    return Response(200, {"slot": ex.slot, "seed": ex.seed, "digest": ex.state_digest()})
