"""`keys reencrypt`: move every stored server-key secret to SERVER_KEY_CURRENT, no downtime.

Rotation: add the new key to SERVER_KEYS and make it current (SERVER_KEY_CURRENT), restart the
daemon (it opens old and new envelopes alike), run `keys reencrypt`, then drop the old key once
the report lists it under `removable_key_ids`.

What it rewrites, one row at a time with compare-and-swap (a row the daemon changed meanwhile
is left alone and counted as `changed_meanwhile`; run again):
- legacy agent key envelopes (wallets.agent_private_key_encrypted) and sealed UMKs
  (trading_bots.umk_encrypted_for_bot): re-sealed under the current key;
- policy HMACs: re-signed with `resign_policy_hmac`, which refuses a row that does not verify
  (an edited policy is reported, never laundered into a fresh signature).
V3 envelopes are under the owner's UMK, not a server key, and are not touched. Webhook secret
hashes cannot be re-made without the secret: they are re-hashed when the bot next presents its
secret, or replaced by `bot rotate-secret`; their key ids are reported and keep a key in use.
Exit 1 when any row was refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from operator_cli.context import opened
from operator_cli.output import EXIT_OK, EXIT_REFUSED, Outcome, command
from security.agent_keys import PURPOSE_AGENT_PRIVKEY_LEGACY
from security.envelope import Binding
from security.errors import EnvelopeError, PolicyRefused
from security.execution import umk_binding
from security.policy import resign_policy_hmac
from security.server_key import ServerKeyRing, key_ids_in_use
from storage import bots, wallets
from storage.database import Database


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `keys reencrypt`."""
    group = subparsers.add_parser("keys", help="server key rotation")
    sub = group.add_subparsers(dest="keys_command", required=True)
    reencrypt = sub.add_parser("reencrypt", parents=[common],
                               help="re-seal and re-sign everything under SERVER_KEY_CURRENT")
    reencrypt.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    reencrypt.set_defaults(func=cmd_keys_reencrypt)


def _envelopes(db: Database, ring: ServerKeyRing, dry_run: bool) -> dict[str, Any]:
    """Re-seal legacy agent keys and sealed UMKs; returns counts and refusals."""
    report: dict[str, Any] = {"reencrypted": 0, "already_current": 0, "changed_meanwhile": 0,
                              "refused": []}
    items = [("wallet_agent_key", address, envelope,
              Binding(address, PURPOSE_AGENT_PRIVKEY_LEGACY),
              lambda old, new, a=address: wallets.replace_legacy_envelope(db, a, old, new))
             for address, envelope in wallets.legacy_envelopes(db)]
    items += [("bot_umk", bot_id, envelope, umk_binding(wallet, bot_id),
               lambda old, new, b=bot_id: bots.replace_umk_envelope(db, b, old, new))
              for bot_id, wallet, envelope in bots.umk_envelopes(db)]
    for kind, ref, envelope, binding, replace in items:
        try:
            new = ring.reencrypt(envelope, binding)
        except EnvelopeError as exc:
            report["refused"].append({"kind": kind, "ref": ref, "reason": type(exc).__name__})
            continue
        if new == envelope:
            report["already_current"] += 1
        elif dry_run or replace(envelope, new):
            report["reencrypted"] += 1
        else:
            report["changed_meanwhile"] += 1
    return report


def _policies(db: Database, ring: ServerKeyRing, dry_run: bool) -> dict[str, Any]:
    """Re-sign every policy HMAC under the current key; refuse rows that do not verify."""
    keys, current = ring.policy_keys(), ring.current_key_id
    report: dict[str, Any] = {"resigned": 0, "already_current": 0, "changed_meanwhile": 0,
                              "refused": []}
    for bot in bots.list_bots(db):
        try:
            new = resign_policy_hmac(keys, current, bot.policy, bot.policy_hmac)
        except PolicyRefused as exc:
            report["refused"].append({"bot_id": bot.id, "reason": exc.reason})
            continue
        if new == bot.policy_hmac:
            report["already_current"] += 1
        elif dry_run or bots.replace_policy_hmac(db, bot, new):
            report["resigned"] += 1
        else:
            report["changed_meanwhile"] += 1
    return report


def _stored_key_ids(db: Database) -> set[str]:
    """Server key ids still named by any stored envelope, policy HMAC or webhook secret hash."""
    envelopes = [e for _, e in wallets.legacy_envelopes(db)]
    envelopes += [e for _, _, e in bots.umk_envelopes(db)]
    in_use = set()
    for envelope in envelopes:
        try:
            in_use |= key_ids_in_use([envelope])
        except EnvelopeError:
            in_use.add("?")
    for bot in bots.list_bots(db):
        if bot.policy_hmac and bot.policy_hmac.count(".") == 2:
            in_use.add(bot.policy_hmac.split(".")[1])
    return in_use | set(bots.webhook_hash_key_ids(db))


@command
def cmd_keys_reencrypt(settings: Any, args: argparse.Namespace) -> Outcome:
    """Re-seal envelopes and re-sign policies under the current server key; report the rest."""
    with opened(settings) as ctx:
        ring = ctx.ring
        envelopes = _envelopes(ctx.db, ring, args.dry_run)
        policies = _policies(ctx.db, ring, args.dry_run)
        hashes = bots.webhook_hash_key_ids(ctx.db)
        in_use = _stored_key_ids(ctx.db)
    current = ring.current_key_id
    on_old = sum(n for kid, n in hashes.items() if kid != current)
    data = {
        "current_key_id": current, "loaded_key_ids": sorted(ring.key_ids), "dry_run": args.dry_run,
        "envelopes": envelopes, "policies": policies,
        "webhook_secret_hashes": {"by_key_id": hashes, "on_old_keys": on_old},
        "key_ids_in_use": sorted(in_use),
        "removable_key_ids": sorted(ring.key_ids - in_use - {current}),
    }
    refused = len(envelopes["refused"]) + len(policies["refused"])
    verb = "would re-seal" if args.dry_run else "re-sealed"
    human = (f"{verb} {envelopes['reencrypted']} envelope(s) and re-signed "
             f"{policies['resigned']} policy HMAC(s) under {current} "
             f"({envelopes['already_current']} + {policies['already_current']} already current); "
             f"removable key ids: {', '.join(data['removable_key_ids']) or 'none'}")
    warning = None
    if refused:
        refs = [r.get("ref") or r.get("bot_id") for r in envelopes["refused"] + policies["refused"]]
        warning = f"{refused} row(s) refused (tampered or unopenable), left as they were: " + \
            ", ".join(str(r) for r in refs)
    if on_old:
        human += f"; {on_old} webhook secret hash(es) still under old keys (re-hashed on next use" \
                 " or `bot rotate-secret`)"
    return Outcome(human, data, EXIT_REFUSED if refused else EXIT_OK, warning=warning)
