"""The redaction filter scrubs registered secrets and key-like shapes from real log output."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator

import base58
import pytest
from solders.keypair import Keypair

from security import redaction
from security.redaction import REDACTED, RedactingFilter, SecretRegistry

SECRET = bytes(range(0x40, 0x60))  # 32 bytes
KEYPAIR = bytes(Keypair.from_seed(bytes(range(7, 39))))
MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"


def forms(secret: bytes) -> list[str]:
    """Encodings the test searches the output for (independent of encodings_of)."""
    b64 = base64.b64encode(secret).decode()
    return [
        secret.hex(),
        secret.hex().upper(),
        base58.b58encode(secret).decode(),
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret),
        str(list(secret)),
    ]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    registry = SecretRegistry()
    registry.register(SECRET)
    registry.register_ed25519_keypair(KEYPAIR)
    registry.register(MNEMONIC)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(extra_field)s"))
    handler.addFilter(RedactingFilter(registry))
    logger = logging.getLogger("test.redaction.handler")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


def _assert_clean(output: str) -> None:
    for secret in (SECRET, KEYPAIR, KEYPAIR[:32]):
        for form in forms(secret):
            assert form not in output, form
    assert MNEMONIC not in output
    assert "sausage" not in output


def test_scrubs_msg_in_every_encoding(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    for form in forms(SECRET) + forms(KEYPAIR) + forms(KEYPAIR[:32]):
        logger.info("value is " + form + " end", extra={"extra_field": "-"})
    output = stream.getvalue()
    _assert_clean(output)
    assert output.count(REDACTED) >= len(forms(SECRET)) * 3
    assert "value is" in output and "end" in output


def test_scrubs_args(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("raw=%r hex=%s b58=%s", SECRET, SECRET.hex(), base58.b58encode(KEYPAIR).decode(),
                   extra={"extra_field": "-"})
    logger.warning("dict %(k)s", {"k": KEYPAIR[:32].hex()}, extra={"extra_field": "-"})
    logger.warning("mnemonic: %s", MNEMONIC.replace(" ", "  \n "), extra={"extra_field": "-"})
    _assert_clean(stream.getvalue())


def test_scrubs_exception_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError(f"could not parse key {SECRET.hex()} / {list(KEYPAIR)}")
    except ValueError:
        logger.exception("failed with %s", base64.b64encode(SECRET).decode(),
                         extra={"extra_field": "-"})
    output = stream.getvalue()
    assert "Traceback" in output and "ValueError" in output
    _assert_clean(output)


def test_scrubs_extra_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("with extra", extra={"extra_field": {"key": SECRET.hex()}})
    _assert_clean(stream.getvalue())
    assert "with extra" in stream.getvalue()


def test_key_like_shapes_without_registration() -> None:
    registry = SecretRegistry()
    other = bytes(range(90, 154))
    text = registry.scrub(
        "pem -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY----- "
        f"json {list(other)} hook qvwh_{'A' * 43} "
        "password=hunter2hunter2 Authorization: Bearer abcdefghijklmnop "
        '{"api_key": "zzzzzzzzzz"} server_key=0123456789abcdef'
    )
    for needle in ("MIIEvQIBADAN", str(other[0]) + ", " + str(other[1]), "qvwh_A",
                   "hunter2", "abcdefghijklmnop", "zzzzzzzzzz", "0123456789abcdef"):
        assert needle not in text, needle
    assert "password=" in text and "Bearer " in text


def test_ordinary_text_survives() -> None:
    registry = SecretRegistry()
    registry.register(SECRET)
    sig = base58.b58encode(bytes(range(64))).decode()
    line = f"order placed tx={sig} market=SOL-PERP size=1.5 reason=webhook_secret_mismatch"
    assert registry.scrub(line) == line


def test_short_secrets_refused_and_repr_hides() -> None:
    registry = SecretRegistry()
    with pytest.raises(ValueError):
        registry.register(b"abc")
    registry.register(SECRET)
    assert SECRET.hex() not in repr(registry)


def test_install_scrubs_records_from_any_logger() -> None:
    registry = SecretRegistry()
    registry.register(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # no filter on this handler
    logger = logging.getLogger("test.redaction.installed.child")
    logger.propagate = False
    logger.addHandler(handler)
    redaction.install(registry)
    try:
        logger.error("leak %s", SECRET.hex())
        try:
            raise RuntimeError(base58.b58encode(SECRET).decode())
        except RuntimeError:
            logger.exception("boom")
    finally:
        redaction.uninstall()
        logger.removeHandler(handler)
    output = stream.getvalue()
    _assert_clean_secret_only(output)
    assert "leak [REDACTED]" in output and "RuntimeError" in output


def _assert_clean_secret_only(output: str) -> None:
    for form in forms(SECRET):
        assert form not in output, form


def test_filter_can_fail_without_it() -> None:
    """Control: the same logging without the filter does leak (so the tests can fail)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.redaction.control")
    logger.propagate = False
    logger.addHandler(handler)
    logger.error("leak %s", SECRET.hex())
    logger.removeHandler(handler)
    assert SECRET.hex() in stream.getvalue()


def test_embedded_forms_are_found() -> None:
    registry = SecretRegistry()
    registry.register(SECRET)
    for line in (f"0x{SECRET.hex()}", f"prefix{SECRET.hex()}ffff", repr(bytearray(SECRET)),
                 repr(b"header" + SECRET + b"trailer"), str(list(b"ab" + SECRET)),
                 f"key={base58.b58encode(SECRET).decode()}."):
        scrubbed = registry.scrub(line)
        for form in forms(SECRET):
            assert form not in scrubbed, (line, form)


def test_many_registered_secrets_stay_fast() -> None:
    """Thousands of agent keys must not make each log line slower (set lookups, no regex)."""
    import time

    registry = SecretRegistry()
    keys = [i.to_bytes(4, "big") * 16 for i in range(3000)]
    for key in keys:
        registry.register_ed25519_keypair(key)
    line = (f"signed order for wallet with key {keys[1500].hex()} tx="
            + base58.b58encode(bytes(64)).decode())
    start = time.perf_counter()
    for _ in range(300):
        scrubbed = registry.scrub(line)
    assert time.perf_counter() - start < 1.5
    assert keys[1500].hex() not in scrubbed and keys[1500][:32].hex() not in scrubbed
