"""Typed refusals shared by the security modules, so callers can catch one base class.

Messages are fixed strings chosen here: they never include key material, plaintext or
ciphertext, so an exception that reaches a log line or an API answer leaks nothing.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base of every refusal raised by the security package."""


class SignatureRefused(SecurityError):
    """The wallet signature does not verify for the claimed wallet and message."""


class InvalidKeyMaterial(SecurityError):
    """Key bytes of the wrong size or shape were supplied."""


class EnvelopeError(SecurityError):
    """A sealed envelope could not be opened or parsed."""


class EnvelopeMalformed(EnvelopeError):
    """The envelope text is not a well-formed envelope."""


class UnknownEnvelopeVersion(EnvelopeError):
    """The envelope carries a format version this code does not know."""


class EnvelopeAuthFailed(EnvelopeError):
    """Authentication failed: wrong key, wrong binding (AD), or tampered bytes."""


class UnknownKeyId(EnvelopeError):
    """The envelope names a key id that is not loaded."""


class ServerKeyError(SecurityError):
    """The server key could not be loaded safely."""


class BodyTooLarge(SecurityError):
    """The request body exceeds the configured limit."""


class BadContentLength(SecurityError):
    """The Content-Length header is not a non-negative integer."""


class PolicyRefused(SecurityError):
    """A policy MAC did not verify; `reason` is the fixed label from security.policy."""

    def __init__(self, reason: str) -> None:
        """Keep the reason label as an attribute and as the message."""
        super().__init__(f"policy refused: {reason}")
        self.reason = reason
