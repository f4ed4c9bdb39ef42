"""install_log_redaction: server keys and later-registered secrets never reach a handler."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest

from security import redaction
from security.log_redaction import (
    install_log_redaction,
    log_redaction_scope,
    register_agent_keypair,
    register_secret,
)
from security.redaction import RedactingFilter
from tests.security.helpers import ring


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("qv.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    redaction.uninstall()


def test_server_keys_and_registered_secrets_are_scrubbed(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    key_ring = ring("k-new")
    install_log_redaction(key_ring, ["admin-token-" + secrets.token_hex(8)])
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    webhook = "opaque" + secrets.token_hex(16)
    register_secret(webhook)
    agent = secrets.token_bytes(64)
    register_agent_keypair(agent)
    server_key = key_ring.secret_material()[0]
    logger.info("key %s secret %s agent %s seed %s", server_key.hex(), webhook, agent.hex(),
                agent[:32].hex())
    logger.info("extra", extra={"detail": webhook})
    text = stream.getvalue()
    assert server_key.hex() not in text and webhook not in text
    assert agent.hex() not in text and agent[:32].hex() not in text
    assert text.count("[REDACTED]") >= 4


def test_installing_twice_attaches_one_filter(captured) -> None:  # type: ignore[no-untyped-def]
    _, _, handler = captured
    install_log_redaction()
    install_log_redaction()
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_a_scope_undoes_only_what_it_installed(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    factory = logging.getLogRecordFactory()
    webhook = "scoped" + secrets.token_hex(16)
    with log_redaction_scope():
        register_secret(webhook)
        assert logging.getLogRecordFactory() is not factory
        logger.info("inside %s", webhook)
    assert logging.getLogRecordFactory() is factory
    assert not any(isinstance(f, RedactingFilter) for f in handler.filters)
    assert webhook not in stream.getvalue()
    install_log_redaction()
    installed = logging.getLogRecordFactory()
    with log_redaction_scope():
        pass
    assert logging.getLogRecordFactory() is installed  # the daemon's own install stays
