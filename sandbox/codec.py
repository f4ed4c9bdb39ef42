"""Drift wire codec for the sandbox: driftpy's IDL through anchorpy's coders, built once.

Everything the sandbox reads from a client (signed Swift messages, program instructions) and
everything it serves (User, UserStats, SignedMsgUserOrders, PerpMarket account bytes) passes
through the same anchor coder driftpy uses, so a byte the sandbox accepts is a byte the real
program family accepts, and driftpy's decoders read what the sandbox serves.
"""

from __future__ import annotations

import json
import pathlib
from functools import lru_cache
from hashlib import sha256
from typing import Any

import driftpy
from anchorpy.coder.accounts import _account_discriminator
from anchorpy.coder.coder import Coder
from anchorpy.program.common import NamedInstruction
from anchorpy_core.idl import Idl
from driftpy.constants.config import DRIFT_PROGRAM_ID
from solders.pubkey import Pubkey

PROGRAM_ID: Pubkey = DRIFT_PROGRAM_ID
SIGNED_MSG_DISCRIMINATOR = sha256(b"global:SignedMsgOrderParamsMessage").digest()[:8]
SIGNED_MSG_DELEGATE_DISCRIMINATOR = sha256(
    b"global:SignedMsgOrderParamsDelegateMessage"
).digest()[:8]
# The real server zero-pads short messages before decoding (older clients omit new options).
_MESSAGE_PADDING = bytes(128)


def _idl_path() -> pathlib.Path:
    """Where the installed driftpy keeps the Drift program IDL."""
    return pathlib.Path(str(next(iter(driftpy.__path__)))) / "idl" / "drift.json"


@lru_cache(maxsize=1)
def coder() -> Coder:
    """The anchorpy coder for the Drift IDL (built once; construction takes ~0.5 s)."""
    return Coder(Idl.from_json(_idl_path().read_text()))


@lru_cache(maxsize=1)
def error_codes() -> dict[str, int]:
    """Drift program error name -> custom error code (6000 + n), from the IDL."""
    raw = json.loads(_idl_path().read_text())
    return {e["name"]: int(e["code"]) for e in raw.get("errors", [])}


def variant(value: Any) -> str:
    """Name of a decoded anchor enum value ("Market", "Long", ...), case exactly as the IDL."""
    return type(value).__name__


@lru_cache(maxsize=4)
def message_layout(name: str, compiled: bool = True) -> Any:
    """anchorpy's layout of an IDL type, compiled by construct when possible (~2x faster
    parsing, same result: tested against the plain layout)."""
    layout = coder().types._get_layout(name)
    if compiled:
        try:
            return layout.compile()
        except Exception:  # construct cannot compile every layout; the plain one is equivalent
            return layout
    return layout


def decode_signed_message(raw: bytes) -> tuple[bool, Any]:
    """Decode borsh SignedMsgOrderParams(Delegate)Message bytes; returns (is_delegate, message).

    Raises ValueError for an unknown discriminator or undecodable body.
    """
    disc = raw[:8]
    if disc == SIGNED_MSG_DISCRIMINATOR:
        name, delegate = "SignedMsgOrderParamsMessage", False
    elif disc == SIGNED_MSG_DELEGATE_DISCRIMINATOR:
        name, delegate = "SignedMsgOrderParamsDelegateMessage", True
    else:
        raise ValueError("unknown signed message discriminator")
    try:
        return delegate, message_layout(name).parse(raw[8:] + _MESSAGE_PADDING)
    except Exception as exc:  # construct raises many types; the caller maps them to one answer
        raise ValueError(f"failed to decode {name}: {exc}") from exc


def decode_instruction(data: bytes) -> tuple[str, Any]:
    """Decode Drift instruction data into (snake_case name, args); ValueError when unknown."""
    ic = coder().instruction
    sighash = bytes(data[:8])
    name = ic.sighash_to_name.get(sighash)
    if name is None:
        raise ValueError("unknown instruction")
    try:
        parsed = ic.sighash_layouts[sighash].parse(bytes(data[8:]))
    except Exception as exc:
        raise ValueError(f"failed to decode {name}: {exc}") from exc
    return name, parsed



@lru_cache(maxsize=8)
def _zero_template_bytes(account_name: str) -> bytes:
    """Discriminator plus zeros long enough for any fixed-size account of this kind."""
    return _account_discriminator(account_name) + bytes(12_000)


def blank_account(account_name: str) -> Any:
    """A freshly decoded all-zero account object of this kind, ready to fill and encode."""
    return coder().accounts.decode(_zero_template_bytes(account_name))


def encode_account(account_name: str, data: Any) -> bytes:
    """Encode an account object (discriminator included) with anchorpy's account coder."""
    return coder().accounts.build(NamedInstruction(name=account_name, data=data))



def pubkey_field(key: Pubkey) -> list[int]:
    """A pubkey in the form anchorpy's encoder copies safely (it deep-copies dataclasses)."""
    return list(bytes(key))
