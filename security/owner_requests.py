"""Requests signed by a wallet's owner: how a manual trade of a V3 bot proves the owner wants it.

A V3 wallet's agent key opens only through its owner's grant, so the operator's admin token
alone must not trade it: the owner signs the request with the wallet's own ed25519 key (the
wallet address is that key). The signed message names its purpose, the bot and a unix
timestamp, then the exact body; a request older or newer than MAX_SKEW_S is refused, and the
signature doubles as the idempotency key, so a replay inside the window is a duplicate.
"""

from __future__ import annotations

import hashlib

from solders.pubkey import Pubkey
from solders.signature import Signature

MAX_SKEW_S = 60.0
SIGNATURE_HEADER = "x-owner-signature"  # base58, as wallets print signatures
TIMESTAMP_HEADER = "x-owner-timestamp"  # unix seconds


def owner_request_message(bot_id: str, timestamp: str, body: bytes) -> bytes:
    """What the owner signs for a manual trade of `bot_id` at `timestamp`."""
    return b"quantumvault manual trade v1\n" + f"{bot_id}\n{timestamp}\n".encode() + body


def idempotency_key(bot_id: str, signature: str) -> str:
    """The signal hash of an owner-signed request: one per signature, however it is spelled
    (the canonical base58 form), and never truncated into another bot's or request's."""
    canonical = str(Signature.from_string(signature.strip()))
    return "manual:" + hashlib.sha256(f"{bot_id}\n{canonical}".encode()).hexdigest()


def owner_request_refusal(owner_address: str, bot_id: str, timestamp: str | None,
                          signature: str | None, body: bytes, now: float) -> str | None:
    """None when the owner signed this request within the time window, else why not."""
    if not signature or not timestamp:
        return "owner_signature_missing"
    try:
        moment = float(timestamp)
        parsed = Signature.from_string(signature.strip())
        owner = Pubkey.from_string(owner_address)
    except ValueError:
        return "owner_signature_malformed"
    if not abs(now - moment) <= MAX_SKEW_S:  # NaN is refused too
        return "owner_signature_stale"
    if not parsed.verify(owner, owner_request_message(bot_id, timestamp, body)):
        return "owner_signature_mismatch"
    return None
