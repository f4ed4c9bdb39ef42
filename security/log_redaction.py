"""Install the log redaction filter on this process's logging, and feed it runtime secrets.

Call `install_log_redaction(ring, [admin_token])` once, right after logging is configured:
it wraps the record factory (every record from every logger is scrubbed at creation), attaches
a `RedactingFilter` to every handler that exists now (for `extra=` fields, which are attached
after the factory runs), and registers the server keys and their derived keys. Secrets that
appear later (a new webhook secret, an agent key being created or opened) are registered with
`register_secret` / `register_agent_keypair` before anything could log them.

`log_redaction_scope()` does the same for the length of one operator command and then undoes
what it installed itself, so a command run in-process (tests, the demo) leaves the caller's
logging as it found it; in the daemon, where runtime installs redaction first, it changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator

from security import redaction
from security.redaction import DEFAULT_REGISTRY, RedactingFilter
from security.server_key import ServerKeyRing


def _handlers() -> list[logging.Handler]:
    """Handlers of the root logger and of every logger created so far."""
    handlers = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    return handlers


def install_log_redaction(
    ring: ServerKeyRing | None = None, secrets: Iterable[bytes | str] = ()
) -> RedactingFilter:
    """Scrub every log record of registered secrets and key-like text (idempotent)."""
    scrubber = redaction.install(DEFAULT_REGISTRY)
    _attach(scrubber)
    if ring is not None:
        DEFAULT_REGISTRY.register_many(ring.secret_material())
    for secret in secrets:
        register_secret(secret)
    return scrubber


def _attach(scrubber: RedactingFilter) -> list[logging.Handler]:
    """Add the filter to every handler that has no RedactingFilter yet; returns those."""
    added = []
    for handler in _handlers():
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(scrubber)
            added.append(handler)
    return added


@contextlib.contextmanager
def log_redaction_scope() -> Iterator[RedactingFilter]:
    """Redaction for one command; afterwards remove only what this scope installed."""
    factory = logging.getLogRecordFactory()
    scrubber = redaction.install(DEFAULT_REGISTRY)
    installed_here = logging.getLogRecordFactory() is not factory
    added = _attach(scrubber)
    try:
        yield scrubber
    finally:
        for handler in added:
            handler.removeFilter(scrubber)
        if installed_here:
            redaction.uninstall()


def register_secret(secret: bytes | str) -> None:
    """Scrub this secret (in its usual encodings) from every later log record."""
    DEFAULT_REGISTRY.register(secret)


def register_agent_keypair(keypair: bytes) -> None:
    """Scrub a 64-byte ed25519 keypair and its 32-byte seed half."""
    DEFAULT_REGISTRY.register_ed25519_keypair(keypair)
