"""Account encoding: the fast User encoder is byte-identical to a whole-object anchorpy build,
and driftpy's decoders read back what the sandbox stores."""

from __future__ import annotations

import random

import pytest
from driftpy.decode.user import decode_user
from solders.pubkey import Pubkey

from sandbox.accounts import OrderState, UserState, encode_user, encode_user_reference


def _random_user(rng: random.Random) -> UserState:
    user = UserState(authority=Pubkey(bytes(rng.randrange(256) for _ in range(32))),
                     delegate=Pubkey(bytes(rng.randrange(256) for _ in range(32)))
                     if rng.random() < 0.5 else Pubkey.default(),
                     quote_balance=rng.randrange(0, 10**12), total_deposits=rng.randrange(10**12),
                     next_order_id=rng.randrange(1, 1000), last_active_slot=rng.randrange(10**9))
    for market in rng.sample(range(40), rng.randrange(0, 9)):
        pos = user.position(market)
        pos.base_asset_amount = rng.randrange(-10**12, 10**12)
        pos.quote_asset_amount = rng.randrange(-10**10, 10**10)
        pos.quote_entry_amount = rng.randrange(-10**10, 10**10)
    for i in range(rng.randrange(0, 33)):
        user.orders.append(OrderState(
            order_id=i + 1, market_index=rng.randrange(40),
            direction=rng.choice(["long", "short"]),
            order_type=rng.choice(["Market", "Limit", "Oracle"]),
            base_asset_amount=rng.randrange(1, 10**12), slot=rng.randrange(10**9),
            price=rng.randrange(10**9), auction_duration=rng.randrange(0, 256),
            auction_start_price=rng.randrange(-10**9, 10**9),
            auction_end_price=rng.randrange(-10**9, 10**9), max_ts=rng.randrange(2**40),
            reduce_only=rng.random() < 0.5, signed=rng.random() < 0.5,
            base_filled=rng.randrange(0, 10**6)))
    return user


@pytest.mark.parametrize("seed", range(12))
def test_fast_user_encoding_matches_anchorpy_build(seed: int) -> None:
    user = _random_user(random.Random(seed))
    fast = encode_user(user)
    assert fast == encode_user_reference(user)
    decoded = decode_user(fast)
    assert decoded.authority == user.authority
    assert decoded.next_order_id == user.next_order_id
    open_ids = sorted(o.order_id for o in decoded.orders if o.order_id)
    assert open_ids == sorted(o.order_id for o in user.orders)[:32]
