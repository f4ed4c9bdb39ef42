"""Policy HMAC: canonical encoding, tamper of every field refused, rotation-aware keys."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from security.errors import PolicyRefused
from security.policy import (
    REASON_INVALID_FIELD,
    REASON_MALFORMED,
    REASON_MISMATCH,
    REASON_MISSING,
    REASON_UNKNOWN_KEY,
    REASON_UNKNOWN_VERSION,
    BotPolicy,
    canonical_decimal,
    canonical_policy,
    compute_policy_hmac,
    resign_policy_hmac,
    verify_policy_hmac,
)
from tests.security.helpers import ring

POLICY = BotPolicy(bot_id="bot-1", market="SOL-PERP", leverage=5, max_position_size="1000.50")
KEYS = ring("k-old").policy_keys()


def _signed(policy: BotPolicy = POLICY, key_id: str = "k-old") -> str:
    return compute_policy_hmac(KEYS[key_id], key_id, policy)


def test_round_trip() -> None:
    check = verify_policy_hmac(KEYS, POLICY, _signed(), current_key_id="k-old")
    assert check.ok and check.reason is None and not check.needs_resign


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bot_id", "bot-2"),
        ("market", "BTC-PERP"),
        ("market", "sol-perp"),
        ("leverage", 50),
        ("leverage", "5.0001"),
        ("max_position_size", "100000.5"),
        ("max_position_size", Decimal("1000.51")),
    ],
)
def test_every_tampered_field_is_refused(field: str, value: object) -> None:
    check = verify_policy_hmac(KEYS, replace(POLICY, **{field: value}), _signed())
    assert not check.ok
    assert check.reason == REASON_MISMATCH


@pytest.mark.parametrize(
    ("leverage", "size"),
    [(Decimal("5"), Decimal("1000.5")), ("5.00", "1000.500"), (Decimal("5E0"), "1.0005E+3")],
)
def test_equal_values_in_other_forms_verify(leverage: object, size: object) -> None:
    same = replace(POLICY, leverage=leverage, max_position_size=size)
    assert verify_policy_hmac(KEYS, same, _signed()).ok


def test_canonical_decimal() -> None:
    assert canonical_decimal("2.50") == "2.5"
    assert canonical_decimal("1E+2") == "100"
    assert canonical_decimal(Decimal("-0.00")) == "0"
    assert canonical_decimal(Decimal("1.5E-7")) == "0.00000015"
    assert canonical_decimal("1.00000000000000000000000000000001") != "1"
    for bad in (1.5, True, "NaN", "Infinity", "-1", "abc", "1E+40"):
        with pytest.raises(ValueError):
            canonical_decimal(bad)  # type: ignore[arg-type]


def test_encoding_is_unambiguous() -> None:
    a = BotPolicy(bot_id="ab", market="c", leverage=1, max_position_size=1)
    b = BotPolicy(bot_id="a", market="bc", leverage=1, max_position_size=1)
    assert canonical_policy(a) != canonical_policy(b)
    assert canonical_policy(replace(POLICY, bot_id=7)) == canonical_policy(
        replace(POLICY, bot_id="7")
    )


def test_missing_malformed_unknown() -> None:
    assert verify_policy_hmac(KEYS, POLICY, None).reason == REASON_MISSING
    assert verify_policy_hmac(KEYS, POLICY, "").reason == REASON_MISSING
    assert verify_policy_hmac(KEYS, POLICY, None, allow_missing=True).ok
    assert verify_policy_hmac(KEYS, POLICY, "garbage").reason == REASON_MALFORMED
    assert verify_policy_hmac(KEYS, POLICY, _signed() + "\n").reason == REASON_MALFORMED
    assert verify_policy_hmac(KEYS, POLICY, _signed()[:-1]).reason == REASON_MALFORMED
    v2 = "v2" + _signed()[2:]
    assert verify_policy_hmac(KEYS, POLICY, v2).reason == REASON_UNKNOWN_VERSION
    other_id = _signed().replace("v1.k-old.", "v1.k-gone.")
    assert verify_policy_hmac(KEYS, POLICY, other_id).reason == REASON_UNKNOWN_KEY
    bad = replace(POLICY, leverage="NaN")
    assert verify_policy_hmac(KEYS, bad, _signed()).reason == REASON_INVALID_FIELD


def test_flipped_digest_character_is_refused() -> None:
    signed = _signed()
    flipped = signed[:-1] + ("0" if signed[-1] != "0" else "1")
    assert verify_policy_hmac(KEYS, POLICY, flipped).reason == REASON_MISMATCH


def test_rotation_flags_resign_and_new_key_differs() -> None:
    keys = ring("k-new").policy_keys()
    check = verify_policy_hmac(keys, POLICY, _signed(), current_key_id="k-new")
    assert check.ok and check.needs_resign and check.key_id == "k-old"
    resigned = compute_policy_hmac(keys["k-new"], "k-new", POLICY)
    assert verify_policy_hmac(keys, POLICY, resigned, current_key_id="k-new").needs_resign is False
    assert resigned.split(".")[-1] != _signed().split(".")[-1]


def test_reason_has_no_key_material() -> None:
    check = verify_policy_hmac(KEYS, replace(POLICY, leverage=6), _signed())
    text = repr(check)
    for key in KEYS.values():
        assert key.hex() not in text
    assert _signed().split(".")[-1] not in text


def test_resign_moves_to_current_key_but_never_launders_tamper() -> None:
    keys = ring("k-new").policy_keys()
    old = _signed()
    new = resign_policy_hmac(keys, "k-new", POLICY, old)
    assert new.startswith("v1.k-new.")
    assert verify_policy_hmac(keys, POLICY, new, current_key_id="k-new").ok
    assert resign_policy_hmac(keys, "k-new", POLICY, new) == new
    with pytest.raises(PolicyRefused) as info:
        resign_policy_hmac(keys, "k-new", replace(POLICY, leverage=100), old)
    assert info.value.reason == REASON_MISMATCH
    with pytest.raises(PolicyRefused):
        resign_policy_hmac(keys, "k-new", POLICY, None)
