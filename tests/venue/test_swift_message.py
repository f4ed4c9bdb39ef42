"""Wire compatibility of our SignedMsgOrderParamsMessage encoder with driftpy's anchor coder."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from driftpy.swift.util import digest_signature
from driftpy.types import is_variant
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from tests.venue.driftpy_oracle import driftpy_decode, driftpy_encode
from venue.auction import AuctionConfig
from venue.swift_message import (
    DELEGATE_MESSAGE_DISCRIMINATOR,
    MESSAGE_DISCRIMINATOR,
    OrderSigner,
    decode_message,
    encode_message,
    sign_order,
)
from venue.swift_order import (
    LONG,
    SHORT,
    OrderSpec,
    SignedMsgOrder,
    TriggerParams,
    build_message,
    limit_order,
    market_order,
    new_uuid,
)

U64 = 2**64 - 1
I64 = 2**63 - 1
I32 = 2**31 - 1


def _maybe(rng: random.Random, gen):
    return None if rng.random() < 0.5 else gen()


def random_message(rng: random.Random, delegate: bool) -> SignedMsgOrder:
    params = OrderSpec(
        order_type=rng.randrange(5),
        market_type=rng.randrange(2),
        direction=rng.randrange(2),
        user_order_id=rng.randrange(256),
        base_asset_amount=rng.choice([0, 1, rng.randrange(U64 + 1), U64]),
        price=rng.randrange(U64 + 1),
        market_index=rng.randrange(65536),
        reduce_only=rng.random() < 0.5,
        post_only=rng.randrange(4),
        bit_flags=rng.randrange(256),
        max_ts=_maybe(rng, lambda: rng.randint(-I64 - 1, I64)),
        trigger_price=_maybe(rng, lambda: rng.randrange(U64 + 1)),
        trigger_condition=rng.randrange(4),
        oracle_price_offset=_maybe(rng, lambda: rng.randint(-I32 - 1, I32)),
        auction_duration=_maybe(rng, lambda: rng.randrange(256)),
        auction_start_price=_maybe(rng, lambda: rng.randint(-I64 - 1, I64)),
        auction_end_price=_maybe(rng, lambda: rng.randint(-I64 - 1, I64)),
    )
    trig = lambda: TriggerParams(rng.randrange(U64 + 1), rng.randrange(U64 + 1))  # noqa: E731
    return SignedMsgOrder(
        params=params,
        slot=rng.randrange(U64 + 1),
        uuid=bytes(rng.randrange(256) for _ in range(8)),
        sub_account_id=0 if delegate else rng.randrange(65536),
        taker_pubkey=Pubkey(bytes(rng.randrange(256) for _ in range(32))) if delegate else None,
        take_profit=_maybe(rng, trig),
        stop_loss=_maybe(rng, trig),
        max_margin_ratio=_maybe(rng, lambda: rng.randrange(65536)),
        builder_idx=_maybe(rng, lambda: rng.randrange(256)),
        builder_fee_tenth_bps=_maybe(rng, lambda: rng.randrange(65536)),
    )


@pytest.mark.parametrize("delegate", [False, True])
def test_random_messages_are_byte_identical_to_driftpy(delegate: bool) -> None:
    rng = random.Random(20261121 + delegate)
    for _ in range(300):
        m = random_message(rng, delegate)
        assert encode_message(m) == driftpy_encode(m), m


@pytest.mark.parametrize("delegate", [False, True])
def test_driftpy_decodes_what_we_encode(delegate: bool) -> None:
    rng = random.Random(7 + delegate)
    for _ in range(100):
        m = random_message(rng, delegate)
        d = driftpy_decode(encode_message(m), delegate)
        p, q = m.params, d.signed_msg_order_params
        assert q.order_type.index == p.order_type
        assert q.market_type.index == p.market_type
        assert q.direction.index == p.direction
        assert q.post_only.index == p.post_only
        assert q.trigger_condition.index == p.trigger_condition
        for name in ("user_order_id", "base_asset_amount", "price", "market_index",
                     "reduce_only", "bit_flags", "max_ts", "trigger_price",
                     "oracle_price_offset", "auction_duration", "auction_start_price",
                     "auction_end_price"):
            assert getattr(q, name) == getattr(p, name), name
        assert d.slot == m.slot
        assert bytes(d.uuid) == m.uuid
        if delegate:
            assert bytes(d.taker_pubkey) == bytes(m.taker_pubkey)
        else:
            assert d.sub_account_id == m.sub_account_id
        for ours, theirs in ((m.take_profit, d.take_profit_order_params),
                             (m.stop_loss, d.stop_loss_order_params)):
            if ours is None:
                assert theirs is None
            else:
                assert (theirs.trigger_price, theirs.base_asset_amount) == (
                    ours.trigger_price, ours.base_asset_amount)
        assert d.max_margin_ratio == m.max_margin_ratio
        assert d.builder_idx == m.builder_idx
        assert d.builder_fee_tenth_bps == m.builder_fee_tenth_bps


@pytest.mark.parametrize("delegate", [False, True])
def test_our_decoder_round_trips(delegate: bool) -> None:
    rng = random.Random(99 + delegate)
    for _ in range(100):
        m = random_message(rng, delegate)
        assert decode_message(encode_message(m)) == m


def test_discriminators_match_the_documented_values() -> None:
    assert MESSAGE_DISCRIMINATOR.hex() == "c8d5a65e2234f55d"
    assert DELEGATE_MESSAGE_DISCRIMINATOR.hex() == "42656638c7259e23"


def _builders(direction: int, reduce_only: bool):
    cfg = AuctionConfig()
    yield market_order(direction=direction, base_asset_amount=1_500_000_000, market_index=0,
                       oracle_price=150_000_000, auction=cfg, reduce_only=reduce_only)
    yield limit_order(direction=direction, base_asset_amount=2_000_000_000, market_index=1,
                      price=60_000_000_000, reduce_only=reduce_only)
    yield limit_order(direction=direction, base_asset_amount=10**9, market_index=2, price=3 * 10**9,
                      oracle_price=3_010_000_000, auction=cfg, reduce_only=reduce_only)


@pytest.mark.parametrize("direction", [LONG, SHORT])
@pytest.mark.parametrize("reduce_only", [False, True])
def test_built_orders_match_driftpy_and_sign_over_hex_ascii(direction, reduce_only) -> None:
    kp = Keypair()
    for spec in _builders(direction, reduce_only):
        msg = SignedMsgOrder(params=spec, slot=123_456_789 + 7, uuid=new_uuid())
        signed = sign_order(kp, msg)
        assert signed.message == driftpy_encode(msg)
        assert signed.body["message"] == signed.message.hex()
        assert signed.body["message"] == signed.body["message"].lower()
        sig = base64.b64decode(signed.body["signature"], validate=True)
        assert len(sig) == 64 and sig == signed.signature
        assert Signature.from_bytes(sig).verify(kp.pubkey(), signed.message_hex.encode("ascii"))
        # not a signature over the raw borsh bytes
        assert not Signature.from_bytes(sig).verify(kp.pubkey(), signed.message)
        assert signed.body["taker_authority"] == str(kp.pubkey())
        assert "signing_authority" not in signed.body
        assert signed.body["market_type"] == "perp"
        assert signed.body["market_index"] == spec.market_index
        assert signed.hash_status_key == digest_signature(sig)
        decoded = driftpy_decode(signed.message, False).signed_msg_order_params
        assert decoded.reduce_only is reduce_only
        if spec.order_type == 0:  # market: auction present and ordered for the direction
            s, e = decoded.auction_start_price, decoded.auction_end_price
            assert decoded.auction_duration == 50
            if direction == LONG:
                assert is_variant(decoded.direction, "Long") and s <= e
            else:
                assert is_variant(decoded.direction, "Short") and s >= e


def test_typical_market_order_is_80_bytes() -> None:
    spec = market_order(direction=LONG, base_asset_amount=10**9, market_index=0,
                        oracle_price=150_000_000, auction=AuctionConfig())
    assert len(encode_message(SignedMsgOrder(params=spec, slot=1, uuid=b"abcdefgh"))) == 80


def test_delegate_body_carries_signing_authority() -> None:
    authority, delegate = Keypair(), Keypair()
    user_account = Pubkey.new_unique()
    spec = market_order(direction=SHORT, base_asset_amount=10**9, market_index=0,
                        oracle_price=150_000_000, auction=AuctionConfig())
    msg = SignedMsgOrder(params=spec, slot=5, uuid=new_uuid(), taker_pubkey=user_account)
    signed = sign_order(delegate, msg, taker_authority=authority.pubkey())
    assert signed.body["taker_authority"] == str(authority.pubkey())
    assert signed.body["signing_authority"] == str(delegate.pubkey())
    sig = Signature.from_bytes(signed.signature)
    assert sig.verify(delegate.pubkey(), signed.message_hex.encode())
    assert signed.message == driftpy_encode(msg)
    with pytest.raises(ValueError):
        sign_order(delegate, msg)


def test_uuid_is_fresh_ascii_of_length_8() -> None:
    seen = {new_uuid() for _ in range(200)}
    assert len(seen) == 200
    for u in seen:
        assert len(u) == 8 and u.decode("ascii").isalnum()


def test_hash_status_key_is_base64_sha256_of_signature() -> None:
    spec = limit_order(direction=LONG, base_asset_amount=1, market_index=0, price=1)
    signed = sign_order(Keypair(), SignedMsgOrder(params=spec, slot=1, uuid=b"12345678"))
    expected = base64.b64encode(hashlib.sha256(signed.signature).digest()).decode()
    assert signed.hash_status_key == expected


def test_bad_uuid_and_bad_option_tag_are_rejected() -> None:
    spec = limit_order(direction=LONG, base_asset_amount=1, market_index=0, price=1)
    with pytest.raises(ValueError):
        encode_message(SignedMsgOrder(params=spec, slot=1, uuid=b"short"))
    raw = bytearray(encode_message(SignedMsgOrder(params=spec, slot=1, uuid=b"12345678")))
    raw[8 + 25] = 7  # max_ts option tag follows the 25-byte fixed head
    with pytest.raises(ValueError):
        decode_message(bytes(raw))


def test_order_signer_matches_keypair_and_hides_secret() -> None:
    kp = Keypair()
    signer = OrderSigner(kp)
    spec = limit_order(direction=SHORT, base_asset_amount=5, market_index=3, price=7)
    msg = SignedMsgOrder(params=spec, slot=9, uuid=b"abcdefgh")
    assert sign_order(signer, msg) == sign_order(kp, msg)  # ed25519 is deterministic
    assert repr(signer) == f"OrderSigner(pubkey={kp.pubkey()})"
    assert bytes(kp).hex() not in repr(signer) and str(list(bytes(kp))) not in repr(signer)


def test_build_message_offsets_slot_and_draws_uuid() -> None:
    spec = limit_order(direction=LONG, base_asset_amount=1, market_index=0, price=1)
    a = build_message(spec, 1_000, slot_offset=7, sub_account_id=4)
    b = build_message(spec, 1_000, slot_offset=7, sub_account_id=4)
    assert a.slot == 1_007 and a.sub_account_id == 4 and not a.is_delegate
    assert a.uuid != b.uuid
    user = Pubkey.new_unique()
    d = build_message(spec, 50, slot_offset=0, uuid=b"fixeduid", taker_user_account=user)
    assert d.is_delegate and d.slot == 50 and d.uuid == b"fixeduid" and d.sub_account_id == 0
    with pytest.raises(ValueError):
        build_message(spec, 0)
