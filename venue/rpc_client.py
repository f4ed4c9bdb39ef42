"""Solana JSON-RPC over http.client (venue.http_session): one endpoint, its errors and results.

:class:`SolanaRpc` is one endpoint: typed results, a timeout on every call, two error families
(:class:`RpcError` = the node answered with a JSON-RPC error; :class:`RpcTransportError` = we got
no usable answer). Error messages name the endpoint label ("primary"/"backup"), never its URL,
because provider URLs carry API keys.

HTTP 429 (the provider's rate limit) is survived in place: the same call is retried on the same
endpoint after Retry-After (capped) or a jittered exponential backoff, for at most
``rate_limit_budget_s`` (2 s, and never more than the call's timeout) in total, each 429 counted
in ``rpc_rate_limited_total{endpoint}``. Still limited after that, the call raises
:class:`RpcRateLimited`, a :class:`RpcTransportError`, so RpcFailover's rules apply unchanged.

Switching between primary and backup is venue.rpc_failover; reads shared by concurrent askers
are venue.shared_reads.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey

from observability.trading_metrics import RPC_RATE_LIMITED
from venue.http_session import HttpEndpoint, HttpResponse
from venue.redact import redact_url
from venue.swift_errors import classify_exception

DEFAULT_TIMEOUT_S = 10.0
_MAX_ACCOUNTS_PER_CALL = 100
_MAX_SIGNATURES_PER_CALL = 256
RATE_LIMIT_BUDGET_S = 2.0  # total wait on HTTP 429 answers for one call
RATE_LIMIT_MAX_WAIT_S = 1.0  # longest single wait, whatever Retry-After says
RATE_LIMIT_FIRST_WAIT_S = 0.05  # first backoff when there is no Retry-After
RATE_LIMIT_MIN_WAIT_S = 0.01  # floor of one wait ("Retry-After: 0" must not spin)
_JSON = {"Content-Type": "application/json"}


class RpcTransportError(Exception):
    """No usable JSON-RPC answer: timeout, refused/reset connection, HTTP error, bad JSON."""

    def __init__(self, endpoint: str, method: str, reason: str,
                 http_status: int | None = None) -> None:
        self.endpoint = endpoint
        self.method = method
        self.reason = reason
        self.http_status = http_status
        super().__init__(f"{endpoint} {method}: {reason}")


class RpcRateLimited(RpcTransportError):
    """The endpoint still answered HTTP 429 after the bounded retries (reason "rate_limited")."""


class RpcError(Exception):
    """The node answered with a JSON-RPC error object (e.g. preflight simulation failure)."""

    def __init__(self, endpoint: str, method: str, code: int, message: str,
                 data: Any = None) -> None:
        self.endpoint = endpoint
        self.method = method
        self.code = code
        self.message = message[:300]
        self.data = data
        super().__init__(f"{endpoint} {method}: rpc error {code}: {self.message}")

    @property
    def logs(self) -> list[str]:
        """Program logs attached to a preflight failure, if any."""
        if isinstance(self.data, dict) and isinstance(self.data.get("logs"), list):
            return [str(x) for x in self.data["logs"]]
        return []


class AllRpcDown(Exception):
    """Neither primary nor backup answered the getSlot probe."""


@dataclass(frozen=True)
class AccountData:
    """An account as returned by getAccountInfo (data already base64-decoded)."""

    data: bytes
    owner: Pubkey
    lamports: int
    executable: bool


@dataclass(frozen=True)
class SignatureStatus:
    """One entry of getSignatureStatuses."""

    slot: int
    confirmations: int | None
    err: Any
    confirmation_status: str | None


@dataclass(frozen=True)
class SimulationResult:
    """simulateTransaction's value: error (None on success), logs and compute units."""

    err: Any
    logs: list[str]
    units_consumed: int | None
    slot: int


def _account(value: Any) -> AccountData | None:
    if value is None:
        return None
    data_field = value.get("data")
    if not (isinstance(data_field, list) and len(data_field) == 2 and data_field[1] == "base64"):
        raise ValueError("account data is not base64-encoded")
    return AccountData(
        data=base64.b64decode(data_field[0]),
        owner=Pubkey.from_string(value["owner"]),
        lamports=int(value["lamports"]),
        executable=bool(value.get("executable", False)),
    )


class SolanaRpc:
    """One JSON-RPC endpoint with pooled connections and a timeout on every call."""

    def __init__(
        self,
        url: str,
        *,
        label: str = "rpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = 16,
        rate_limit_budget_s: float = RATE_LIMIT_BUDGET_S,
    ) -> None:
        self._url = url
        self.label = label
        self._timeout = timeout_s
        self._rate_limit_budget = rate_limit_budget_s
        self._ids = itertools.count(1)
        self._http = HttpEndpoint(url, pool_size)

    def __repr__(self) -> str:
        return f"SolanaRpc(label={self.label!r}, url={redact_url(self._url)!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def call(self, method: str, params: list[Any] | None = None,
             *, timeout_s: float | None = None) -> Any:
        """Make one JSON-RPC call and return its ``result``; raises RpcError/RpcTransportError."""
        payload = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                              "params": params or []}).encode()
        timeout = self._timeout if timeout_s is None else timeout_s
        budget = min(self._rate_limit_budget, timeout)
        waited = 0.0
        attempt = 0
        while True:
            try:
                response = self._http.request("POST", "", payload, _JSON,
                                              connect_timeout_s=timeout, read_timeout_s=timeout)
            except (OSError, http.client.HTTPException) as exc:
                raise RpcTransportError(self.label, method,
                                        classify_exception(exc).reason) from None
            if response.status != 429:
                break
            # 429: the provider refused the request without running it. Retrying the same
            # payload is safe for every method, sendTransaction included: a 429 means the
            # transaction was NOT accepted, and even a duplicate send would carry the same
            # signature, which the chain executes at most once.
            RPC_RATE_LIMITED.labels(endpoint=self.label).inc()
            if waited >= budget:
                raise RpcRateLimited(self.label, method, "rate_limited", 429)
            delay = min(_rate_limit_wait(response, attempt), budget - waited)
            time.sleep(delay)
            waited += delay
            attempt += 1
        if response.status != 200:
            raise RpcTransportError(self.label, method, f"http_{response.status}",
                                    response.status)
        try:
            body = json.loads(response.body)
        except ValueError:
            raise RpcTransportError(self.label, method, "invalid_json", 200) from None
        if not isinstance(body, dict):
            raise RpcTransportError(self.label, method, "invalid_json", 200)
        if body.get("error") is not None:
            err = body["error"]
            if not isinstance(err, dict):
                raise RpcError(self.label, method, -1, str(err))
            raise RpcError(self.label, method, int(err.get("code", -1)),
                           str(err.get("message", "")), err.get("data"))
        if "result" not in body:
            raise RpcTransportError(self.label, method, "missing_result", 200)
        return body["result"]

    def get_slot(self, commitment: str = "confirmed", *, timeout_s: float | None = None) -> int:
        """Current slot at ``commitment``."""
        return int(self.call("getSlot", [{"commitment": commitment}], timeout_s=timeout_s))

    def get_block_height(self, commitment: str = "confirmed") -> int:
        """Current block height (compare with a blockhash's last valid block height)."""
        return int(self.call("getBlockHeight", [{"commitment": commitment}]))

    def get_latest_blockhash(self, commitment: str = "confirmed") -> tuple[Hash, int]:
        """(recent blockhash, last valid block height)."""
        value = self.call("getLatestBlockhash", [{"commitment": commitment}])["value"]
        return Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"])

    def get_account_info(self, pubkey: Pubkey,
                         commitment: str = "confirmed") -> tuple[int, AccountData | None]:
        """(context slot, account or None when it does not exist)."""
        result = self.call("getAccountInfo",
                           [str(pubkey), {"encoding": "base64", "commitment": commitment}])
        return int(result["context"]["slot"]), _account(result["value"])

    def get_multiple_accounts(
        self, pubkeys: Sequence[Pubkey], commitment: str = "confirmed"
    ) -> tuple[int, list[AccountData | None]]:
        """(lowest context slot, accounts in order), chunked by 100 keys per call."""
        accounts: list[AccountData | None] = []
        slots: list[int] = []
        for start in range(0, len(pubkeys), _MAX_ACCOUNTS_PER_CALL):
            chunk = [str(k) for k in pubkeys[start:start + _MAX_ACCOUNTS_PER_CALL]]
            result = self.call("getMultipleAccounts",
                               [chunk, {"encoding": "base64", "commitment": commitment}])
            slots.append(int(result["context"]["slot"]))
            accounts.extend(_account(v) for v in result["value"])
        return (min(slots) if slots else 0), accounts

    def send_transaction(self, tx_bytes: bytes, *, skip_preflight: bool = False,
                         preflight_commitment: str = "confirmed",
                         max_retries: int | None = None) -> str:
        """Send a signed, serialized transaction; returns its base58 signature."""
        config: dict[str, Any] = {"encoding": "base64", "skipPreflight": skip_preflight,
                                  "preflightCommitment": preflight_commitment}
        if max_retries is not None:
            config["maxRetries"] = max_retries
        return str(self.call("sendTransaction",
                             [base64.b64encode(tx_bytes).decode("ascii"), config]))

    def get_signature_statuses(self, signatures: Sequence[str], *,
                               search_history: bool = False) -> list[SignatureStatus | None]:
        """Statuses in the order given (None = unknown to the node), 256 per call."""
        out: list[SignatureStatus | None] = []
        for start in range(0, len(signatures), _MAX_SIGNATURES_PER_CALL):
            chunk = list(signatures[start:start + _MAX_SIGNATURES_PER_CALL])
            result = self.call("getSignatureStatuses",
                               [chunk, {"searchTransactionHistory": search_history}])
            out.extend(_status(v) for v in result["value"])
        return out

    def simulate_transaction(self, tx_bytes: bytes, *, sig_verify: bool = False,
                             replace_recent_blockhash: bool = False,
                             commitment: str = "confirmed") -> SimulationResult:
        """Simulate a serialized transaction; program errors come back in ``err``."""
        config = {"encoding": "base64", "sigVerify": sig_verify,
                  "replaceRecentBlockhash": replace_recent_blockhash, "commitment": commitment}
        result = self.call("simulateTransaction",
                           [base64.b64encode(tx_bytes).decode("ascii"), config])
        value = result["value"]
        return SimulationResult(value.get("err"), list(value.get("logs") or []),
                                value.get("unitsConsumed"), int(result["context"]["slot"]))


def _status(value: Any) -> SignatureStatus | None:
    if value is None:
        return None
    return SignatureStatus(int(value["slot"]), value.get("confirmations"), value.get("err"),
                           value.get("confirmationStatus"))


def _rate_limit_wait(response: HttpResponse, attempt: int) -> float:
    """Seconds to wait before retrying a 429: Retry-After (delta-seconds) capped at
    RATE_LIMIT_MAX_WAIT_S plus up to 10 % jitter, else a jittered exponential backoff."""
    header = response.headers.get("retry-after", "")
    try:
        retry_after = float(header)
    except ValueError:
        retry_after = -1.0
    if retry_after >= 0:
        base = max(RATE_LIMIT_MIN_WAIT_S, min(retry_after, RATE_LIMIT_MAX_WAIT_S))
        return base + random.uniform(0.0, 0.1 * base)
    ceiling = min(RATE_LIMIT_MAX_WAIT_S, RATE_LIMIT_FIRST_WAIT_S * 2 ** attempt)
    return random.uniform(ceiling / 2, ceiling)


def error_label(exc: BaseException) -> str:
    """A bounded, secret-free label for an RPC failure (the Drift error name when logged)."""
    if isinstance(exc, RpcError):
        for line in exc.logs:
            if "Error Code:" in line:
                return line.split("Error Code:")[1].split(".")[0].strip()[:60]
        if exc.code == 429:  # the provider's rate limit, however it was answered
            return "rpc_unreachable"
        if isinstance(exc.data, dict) and isinstance(exc.data.get("err"), str):
            return exc.data["err"][:60]  # a preflight refusal (BlockhashNotFound, ...)
        return f"rpc_error_{exc.code}"
    if isinstance(exc, RpcTransportError | AllRpcDown):  # RpcRateLimited included: transient
        return "rpc_unreachable"
    return type(exc).__name__
