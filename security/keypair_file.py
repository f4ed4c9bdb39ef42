"""Solana keypair files (a JSON array of 64 numbers): read, validated, registered for redaction.

The operator CLI imports agent keys from such files and `swift init-orders` signs with one;
both read them here, so an error never quotes the file's content and the secret is scrubbed
from every later log line the moment it is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from solders.keypair import Keypair

from security.errors import InvalidKeyMaterial
from security.log_redaction import register_agent_keypair

MAX_FILE_BYTES = 64 * 1024
SHAPE = "a JSON array of 64 numbers 0..255 (a Solana keypair file)"


def read_keypair_file(path: str | Path) -> Keypair:
    """The keypair in `path`; InvalidKeyMaterial (naming the path, never the content)."""
    try:
        raw = Path(path).read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as exc:
        raise InvalidKeyMaterial(f"cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        numbers = json.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
    except ValueError:
        numbers = None
    if (not isinstance(numbers, list) or len(numbers) != 64
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 255
                       for n in numbers)):
        raise InvalidKeyMaterial(f"{str(path)!r} is not {SHAPE}")
    secret = bytes(numbers)
    register_agent_keypair(secret)
    try:
        keypair = Keypair.from_bytes(secret)
    except (ValueError, TypeError):
        keypair = None
    if keypair is None or bytes(keypair) != secret:
        raise InvalidKeyMaterial(f"{str(path)!r}: its public half does not match its secret half")
    return keypair
