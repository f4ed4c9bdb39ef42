"""Solana JSON-RPC 2.0 over POST, served from the sandbox's state.

Methods: getSlot, getBlockHeight, getLatestBlockhash, getAccountInfo, getMultipleAccounts,
getBalance, getTokenAccountBalance, sendTransaction, simulateTransaction,
getSignatureStatuses, requestAirdrop, getHealth, getVersion, getRecentPrioritizationFees.
Result and error shapes follow the Agave RPC (codes -32002 preflight failure, -32003
signature verification failure, -32600/-32601/-32602/-32700 JSON-RPC errors).

Every call is counted per method in the stats (``rpc_calls[<method>]`` and
``totals["rpc_<method>"]``, monotonic, primary and backup together, batch calls one by one;
calls refused with 429 never reach a method and are counted only in ``rpc_rate_limited``).
Over the ``rpc_rps_limit`` fault the route answers like a provider: HTTP 429, ``Retry-After``
(whole seconds, at least 1) and a JSON-RPC error body with code 429 (:func:`rate_limited`).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from hashlib import sha256
from typing import Any

import base58
from solders.pubkey import Pubkey
from solders.signature import Signature

from httpapi.wsgi import Request, Response
from sandbox import transactions
from sandbox.exchange import FINALIZED_AFTER_SLOTS, Exchange
from sandbox.markets import QUOTE_DECIMALS

RATE_LIMITED_MESSAGE = "Too many requests for a specific RPC call"

log = logging.getLogger(__name__)

RENT_EPOCH = 18_446_744_073_709_551_615
API_VERSION = "2.1.21"


class RpcError(Exception):
    """A JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The "error" member of a response."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def handle(ex: Exchange, req: Request) -> Response:
    """POST / (or /backup): one request or a batch."""
    try:
        payload = json.loads(req.body.decode("utf-8"))
    except ValueError:
        return Response(200, _error(None, RpcError(-32700, "Parse error")))
    if isinstance(payload, list):
        if not payload:
            return Response(200, _error(None, RpcError(-32600, "Invalid request")))
        return Response(200, [_one(ex, item) for item in payload])
    return Response(200, _one(ex, payload))


def peek(body: bytes) -> tuple[int, Any]:
    """(number of calls in a request body, id of a single call): what the rate limit charges.
    A batch costs one per call; an unparsable body costs one (it is answered -32700)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except ValueError:
        return 1, None
    if isinstance(payload, list):
        return max(1, len(payload)), None
    return 1, payload.get("id") if isinstance(payload, dict) else None


def rate_limited(wait_s: float, req_id: Any = None) -> Response:
    """A provider's rate-limit answer: HTTP 429, Retry-After, JSON-RPC error code 429."""
    retry_after = 1 if math.isinf(wait_s) else max(1, math.ceil(wait_s))
    return Response(429, _error(req_id, RpcError(429, RATE_LIMITED_MESSAGE)),
                    headers=(("Retry-After", str(retry_after)),))


def _error(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_json(), "id": req_id}


def _one(ex: Exchange, call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or "method" not in call:
        return _error(call.get("id") if isinstance(call, dict) else None,
                      RpcError(-32600, "Invalid request"))
    req_id = call.get("id")
    method = call["method"]
    params = call.get("params") or []
    fn = _METHODS.get(method)
    ex.stats.incr_rpc(str(method), fn is not None)
    if fn is None:
        return _error(req_id, RpcError(-32601, "Method not found"))
    try:
        result = fn(ex, params)
    except RpcError as err:
        return _error(req_id, err)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        return _error(req_id, RpcError(-32602, f"Invalid params: {exc}"))
    except Exception:  # a sandbox bug must answer like a node would, not drop the connection
        log.exception("rpc method %s failed", method)
        return _error(req_id, RpcError(-32603, "Internal error"))
    return {"jsonrpc": "2.0", "result": result, "id": req_id}


def _ctx(ex: Exchange) -> dict[str, Any]:
    return {"slot": ex.slot, "apiVersion": API_VERSION}


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(str(value))
    except Exception as exc:
        raise RpcError(-32602, f"Invalid param: {exc}") from exc


def _config(params: list[Any], index: int) -> dict[str, Any]:
    cfg = params[index] if len(params) > index else None
    return cfg if isinstance(cfg, dict) else {}


def _account_json(ex: Exchange, key: Pubkey, encoding: str) -> dict[str, Any] | None:
    found = ex.account_data(key)
    if found is None:
        return None
    data, owner, lamports = found
    if encoding == "base58":
        if len(data) > 128:
            raise RpcError(-32600, "Encoded binary (base 58) data should be less than 128 "
                                   "bytes, please use Base64 encoding.")
        encoded: Any = [base58.b58encode(data).decode(), "base58"]
    else:  # base64; jsonParsed falls back to base64 for data the node cannot parse
        encoded = [base64.b64encode(data).decode(), "base64"]
    return {"data": encoded, "executable": False, "lamports": lamports,
            "owner": str(owner), "rentEpoch": RENT_EPOCH, "space": len(data)}


def get_slot(ex: Exchange, params: list[Any]) -> int:
    """getSlot."""
    return ex.slot


def get_latest_blockhash(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getLatestBlockhash: the current slot's hash, valid for 150 slots."""
    return {"context": _ctx(ex), "value": {"blockhash": str(ex.blockhash()),
                                           "lastValidBlockHeight": ex.slot + 150}}


def get_account_info(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getAccountInfo."""
    cfg = _config(params, 1)
    return {"context": _ctx(ex),
            "value": _account_json(ex, _pubkey(params[0]), cfg.get("encoding", "base58"))}


def get_multiple_accounts(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getMultipleAccounts (at most 100 keys, like the real node)."""
    keys = params[0]
    if not isinstance(keys, list) or len(keys) > 100:
        raise RpcError(-32602, "Invalid params: expected at most 100 pubkeys")
    encoding = _config(params, 1).get("encoding", "base64")
    return {"context": _ctx(ex),
            "value": [_account_json(ex, _pubkey(k), encoding) for k in keys]}


def get_balance(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getBalance (lamports)."""
    key = _pubkey(params[0])
    return {"context": _ctx(ex), "value": ex.lamports.get(key, 0)}


def get_token_account_balance(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getTokenAccountBalance."""
    tok = ex.tokens.get(_pubkey(params[0]))
    if tok is None:
        raise RpcError(-32602, "Invalid param: could not find account")
    ui = tok.amount / 10**QUOTE_DECIMALS
    return {"context": _ctx(ex), "value": {
        "amount": str(tok.amount), "decimals": QUOTE_DECIMALS, "uiAmount": ui,
        "uiAmountString": f"{ui:.{QUOTE_DECIMALS}f}".rstrip("0").rstrip(".")}}


def _decode_wire(params: list[Any]) -> bytes:
    if not params or not isinstance(params[0], str):
        raise RpcError(-32602, "Invalid params: missing transaction")
    encoding = _config(params, 1).get("encoding", "base58")
    try:
        if encoding == "base64":
            return base64.b64decode(params[0], validate=True)
        if encoding == "base58":
            return base58.b58decode(params[0])
    except ValueError as exc:
        raise RpcError(-32602, f"invalid {encoding} encoding: {exc}") from exc
    raise RpcError(-32602, f"unsupported encoding: {encoding}. Supported encodings: "
                           "base58, base64")


def _tx(raw: bytes) -> Any:
    try:
        return transactions.decode_transaction(raw)
    except ValueError as exc:
        raise RpcError(-32602, str(exc)) from exc


def _sim_failed(message: str, err: Any, logs: list[str]) -> RpcError:
    return RpcError(-32002, f"Transaction simulation failed: {message}", {
        "accounts": None, "err": err, "innerInstructions": None, "logs": logs,
        "replacementBlockhash": None, "returnData": None, "unitsConsumed": 0,
    })


def send_transaction(ex: Exchange, params: list[Any]) -> str:
    """sendTransaction: preflight (unless skipPreflight), then land in the current slot."""
    tx = _tx(_decode_wire(params))
    skip = bool(_config(params, 1).get("skipPreflight", False))
    sig = str(tx.signatures[0]) if tx.signatures else ""
    ex.stats.incr("transactions_received", str(tx.message.account_keys[0]))
    if sig in ex.transactions:
        if skip:
            return sig
        raise _sim_failed("This transaction has already been processed", "AlreadyProcessed", [])
    try:
        if not skip:
            pre = transactions.execute(ex, tx, commit=False)
            if pre.err is not None:
                raise _sim_failed(pre.message, pre.err, pre.logs)
        transactions.execute(ex, tx, commit=True)
    except transactions.TxFailure as failure:
        if failure.err == "SignatureFailure":
            raise RpcError(-32003, failure.message) from failure
        if skip and failure.err in ("BlockhashNotFound", "AlreadyProcessed"):
            return sig  # accepted by the node, never lands (or already landed)
        raise _sim_failed(failure.message, failure.err, failure.logs) from failure
    return sig


def simulate_transaction(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """simulateTransaction (sigVerify and replaceRecentBlockhash honoured)."""
    cfg = _config(params, 1)
    tx = _tx(_decode_wire(params))
    replace = bool(cfg.get("replaceRecentBlockhash", False))
    try:
        out = transactions.execute(ex, tx, commit=False, verify=bool(cfg.get("sigVerify")),
                                   check_blockhash=not replace)
        err, logs, units = out.err, out.logs, out.units
    except transactions.TxFailure as failure:
        if failure.err == "SignatureFailure":
            raise RpcError(-32003, failure.message) from failure
        err, logs, units = failure.err, failure.logs, 0
    value: dict[str, Any] = {"err": err, "logs": logs, "accounts": None,
                             "unitsConsumed": units, "returnData": None,
                             "innerInstructions": None, "replacementBlockhash": None}
    if replace:
        value["replacementBlockhash"] = {"blockhash": str(ex.blockhash()),
                                         "lastValidBlockHeight": ex.slot + 150}
    return {"context": _ctx(ex), "value": value}


def get_signature_statuses(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getSignatureStatuses: processed in the landing slot, confirmed after, finalized +32."""
    sigs = params[0]
    if not isinstance(sigs, list) or len(sigs) > 256:
        raise RpcError(-32602, "Invalid params: expected at most 256 signatures")
    out: list[Any] = []
    for s in sigs:
        rec = ex.transactions.get(str(s))
        if rec is None:
            out.append(None)
            continue
        age = ex.slot - rec.slot
        if age >= FINALIZED_AFTER_SLOTS:
            status, confirmations = "finalized", None
        elif age >= 1:
            status, confirmations = "confirmed", age
        else:
            status, confirmations = "processed", 0
        out.append({"slot": rec.slot, "confirmations": confirmations, "err": rec.err,
                    "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
                    "confirmationStatus": status})
    return {"context": _ctx(ex), "value": out}


def request_airdrop(ex: Exchange, params: list[Any]) -> str:
    """requestAirdrop: credit lamports, return a synthetic (recorded) signature."""
    key = _pubkey(params[0])
    lamports = int(params[1])
    with ex.lock:
        ex.lamports[key] = ex.lamports.get(key, 0) + lamports
        n = len(ex.transactions)
        sig = Signature(sha256(f"airdrop:{ex.seed}:{n}:{key}".encode()).digest() * 2)
        ex.transactions[str(sig)] = transactions.TxRecord(slot=ex.slot)
    return str(sig)


def get_health(ex: Exchange, params: list[Any]) -> str:
    """getHealth."""
    return "ok"


def get_version(ex: Exchange, params: list[Any]) -> dict[str, Any]:
    """getVersion."""
    return {"solana-core": API_VERSION, "feature-set": 0}


def get_recent_prioritization_fees(ex: Exchange, params: list[Any]) -> list[dict[str, int]]:
    """getRecentPrioritizationFees: a flat, small fee history."""
    return [{"slot": ex.slot - i, "prioritizationFee": 1_000} for i in range(5)]


_METHODS = {
    "getSlot": get_slot,
    "getBlockHeight": get_slot,
    "getLatestBlockhash": get_latest_blockhash,
    "getAccountInfo": get_account_info,
    "getMultipleAccounts": get_multiple_accounts,
    "getBalance": get_balance,
    "getTokenAccountBalance": get_token_account_balance,
    "sendTransaction": send_transaction,
    "simulateTransaction": simulate_transaction,
    "getSignatureStatuses": get_signature_statuses,
    "requestAirdrop": request_airdrop,
    "getHealth": get_health,
    "getVersion": get_version,
    "getRecentPrioritizationFees": get_recent_prioritization_fees,
}
