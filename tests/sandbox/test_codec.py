"""The sandbox's message decoder (anchorpy layout compiled by construct) agrees with driftpy's
anchor coder on random signed messages, both variants."""

from __future__ import annotations

import random
from hashlib import sha256

import pytest
from driftpy.types import (
    SignedMsgOrderParamsDelegateMessage,
    SignedMsgOrderParamsMessage,
    SignedMsgTriggerOrderParams,
)

from sandbox import codec
from tests.sandbox.helpers import coder, order_params


def _random_message(rng: random.Random, delegate: bool) -> bytes:
    params = order_params(
        direction=rng.choice(["long", "short"]), base=rng.randrange(1, 2**63),
        market_index=rng.randrange(85), order_type=rng.choice(["market", "limit", "oracle"]),
        price=rng.randrange(2**40), reduce_only=rng.random() < 0.5,
        auction=(rng.randrange(256), rng.randrange(-2**40, 2**40), rng.randrange(-2**40, 2**40))
        if rng.random() < 0.7 else None)
    if rng.random() < 0.3:
        params.max_ts = rng.randrange(2**40)
    trig = (SignedMsgTriggerOrderParams(rng.randrange(2**40), rng.randrange(2**40))
            if rng.random() < 0.3 else None)
    common = {"signed_msg_order_params": params, "slot": rng.randrange(2**40),
              "uuid": bytes(rng.randrange(33, 127) for _ in range(8)),
              "take_profit_order_params": trig, "stop_loss_order_params": None,
              "max_margin_ratio": rng.choice([None, rng.randrange(2**16)]),
              "builder_idx": rng.choice([None, rng.randrange(256)]),
              "builder_fee_tenth_bps": rng.choice([None, rng.randrange(2**16)])}
    if delegate:
        msg = SignedMsgOrderParamsDelegateMessage(
            taker_pubkey=list(bytes(rng.randrange(256) for _ in range(32))), **common)
        name = "SignedMsgOrderParamsDelegateMessage"
    else:
        msg = SignedMsgOrderParamsMessage(sub_account_id=rng.randrange(2**16), **common)
        name = "SignedMsgOrderParamsMessage"
    return sha256(f"global:{name}".encode()).digest()[:8] + coder().types.encode(name, msg)


@pytest.mark.parametrize("delegate", [False, True])
def test_decoder_matches_anchor_coder(delegate: bool) -> None:
    rng = random.Random(42 + delegate)
    name = ("SignedMsgOrderParamsDelegateMessage" if delegate
            else "SignedMsgOrderParamsMessage")
    for _ in range(200):
        raw = _random_message(rng, delegate)
        is_delegate, decoded = codec.decode_signed_message(raw)
        assert is_delegate is delegate
        assert decoded == coder().types.decode(name, raw[8:] + bytes(128))


def test_unknown_discriminator_and_bad_enum_are_errors() -> None:
    with pytest.raises(ValueError):
        codec.decode_signed_message(bytes(80))
    with pytest.raises(ValueError):  # order_type 9 does not exist
        codec.decode_signed_message(codec.SIGNED_MSG_DISCRIMINATOR + b"\x09" + bytes(71))
