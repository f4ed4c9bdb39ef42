"""The owner's keys for commands the operator runs: the signature from a file, the UMK and
sub-keys it derives, and the agent key it opens.

A V3 wallet's agent key opens only through its owner's signature of the UMK message (never the
server key); a legacy wallet's through the server key while LEGACY_KEY_PATH=on. Every secret
met here is registered for log redaction before it can reach a line.
"""

from __future__ import annotations

from pathlib import Path

from custody.signing_keys import legacy_path_on
from operator_cli.context import Context
from operator_cli.output import CliError
from security.agent_keys import open_agent_privkey, open_agent_privkey_legacy
from security.errors import SecurityError, SignatureRefused
from security.key_hierarchy import (
    SubKeys,
    UserMasterKey,
    derive_subkeys,
    derive_umk,
    parse_signature,
)
from security.log_redaction import register_secret
from storage.wallets import Wallet, wallet_keys


def read_owner_signature(path: str) -> bytes:
    """The owner's signature from --owner-signature-file, registered for log redaction."""
    try:
        text = Path(path).read_text()[:1024]
    except (OSError, UnicodeDecodeError):
        raise CliError(f"cannot read --owner-signature-file {path!r}") from None
    try:
        signature = parse_signature(text)
    except SignatureRefused:
        raise CliError("--owner-signature-file holds no signature (expected base58 or 128 hex"
                       " characters)") from None
    register_secret(signature)
    return signature


def owner_umk(owner: str, signature: bytes) -> UserMasterKey:
    """The owner's UMK from their signature, or the CLI's one clear refusal."""
    try:
        umk = derive_umk(owner, signature)
    except SignatureRefused:
        raise CliError("--owner-signature-file does not verify: it must be the owner's "
                       f"signature of the UMK message for {owner} (`quantumvault wallet "
                       f"umk-message {owner}` prints it)") from None
    register_secret(umk.key)
    return umk


def owner_subkeys(owner: str, signature: bytes) -> SubKeys:
    """The owner's sub-keys (key_privkey, key_execution, ...) from a verified signature."""
    subkeys = derive_subkeys(owner_umk(owner, signature))
    for key in (subkeys.key_privkey, subkeys.key_mnemonic, subkeys.key_execution):
        register_secret(key)
    return subkeys


def agent_secret_for_cli(ctx: Context, wallet: Wallet, signature: bytes | None) -> bytes:
    """The agent key for a command the operator runs: a V3 wallet's through its owner's
    signature (never the server key), a legacy wallet's through the server key if allowed."""
    keys = wallet_keys(ctx.db, wallet.address)
    assert keys is not None
    if keys.v3_envelope is not None:
        if signature is None:
            raise CliError(f"wallet {wallet.address} is V3: its agent key opens only with the "
                           "owner's signature (--owner-signature-file)")
        try:
            return open_agent_privkey(owner_subkeys(wallet.address, signature), keys.v3_envelope)
        except SecurityError:
            raise CliError("the owner's key does not open this wallet's agent key") from None
    if keys.legacy_envelope is None:
        raise CliError(f"wallet {wallet.address} has no agent key sealed under the server key")
    if not legacy_path_on(ctx.settings):
        raise CliError(f"wallet {wallet.address} is legacy and LEGACY_KEY_PATH=off: run "
                       "`quantumvault wallet upgrade` first")
    return open_agent_privkey_legacy(ctx.ring, wallet.address, keys.legacy_envelope)
