"""`keys reencrypt`: move every stored server-key secret to SERVER_KEY_CURRENT, no downtime.

Rotation: add the new key to SERVER_KEYS and make it current (SERVER_KEY_CURRENT), restart the
daemon (it opens old and new envelopes alike: the old key is now *previous*), run `keys
reencrypt`, then retire the old key (SERVER_KEYS_RETIRED) once the report lists it under
`retirable_key_ids` (nothing left under it), and drop it from SERVER_KEYS when you no longer want
refusals to name it. What is only under a retired key is refused, never re-sealed or re-signed:
the report lists such rows under `refused` with reason `RetiredKeyId` / `policy_hmac_retired_key`
/ `webhook_secret_retired_key`.

What it rewrites, one row at a time with compare-and-swap (a row the daemon changed meanwhile
is left alone and counted as `changed_meanwhile`; run again):
- legacy agent key envelopes (wallets.agent_private_key_encrypted) and sealed UMKs
  (trading_bots.umk_encrypted_for_bot): re-sealed under the current key;
- policy HMACs: re-signed with `resign_policy_hmac`, which refuses a row that does not verify
  (an edited policy is reported, never laundered into a fresh signature).
- bound (v2) webhook secret hashes: re-sealed under the current key without the secret (see
  security.webhook_auth), refused when they do not open for their own bot (copied or edited).
V3 envelopes are under the owner's UMK, not a server key, and are not touched. Legacy (v1)
webhook secret hashes, unbound to their bot, cannot be re-made without the secret: they are
upgraded when the bot next presents its secret, or replaced by `bot rotate-secret`; the report
lists their bots under `webhook_secret_hashes.unbound_bot_ids` and they keep their key in use.
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
from security.webhook_auth import reseal_bound_hash, stored_hash_key_id, stored_hash_version
from storage import bots, wallets
from storage.database import Database
from storage.row_mac_rows import mac_key_ids_in_use, reseal_all


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
            ring.open(envelope, binding)  # a current one too: an unopenable row is named
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
            reason = exc.reason
            if ring.is_retired(_policy_key_id(bot.policy_hmac) or ""):
                reason = "policy_hmac_retired_key"
            report["refused"].append({"bot_id": bot.id, "reason": reason})
            continue
        if new == bot.policy_hmac:
            report["already_current"] += 1
        elif dry_run or bots.replace_policy_hmac(db, bot, new):
            report["resigned"] += 1
        else:
            report["changed_meanwhile"] += 1
    return report


def _policy_key_id(stored: str | None) -> str | None:
    """The key id a stored policy MAC names ("v1.<key_id>.<hex>"), or None."""
    if stored and stored.count(".") == 2:
        return stored.split(".")[1]
    return None


def _webhook_hashes(db: Database, ring: ServerKeyRing, dry_run: bool) -> dict[str, Any]:
    """Re-seal bound webhook hashes under the current key; list the unbound (v1) ones."""
    report: dict[str, Any] = {"rehashed": 0, "already_current": 0, "changed_meanwhile": 0,
                              "unbound_bot_ids": [], "refused": []}
    for bot_id, stored in bots.webhook_secret_hashes(db):
        version = stored_hash_version(stored)
        key_id = stored_hash_key_id(stored)
        if version == "v1" and key_id is not None and not ring.is_retired(key_id):
            report["unbound_bot_ids"].append(bot_id)
            continue
        if version != "v2" or key_id is None:
            reason = "webhook_secret_retired_key" if key_id and ring.is_retired(key_id) \
                else "webhook_secret_hash_malformed"
            report["refused"].append({"kind": "webhook_secret_hash", "ref": bot_id,
                                      "reason": reason})
            continue
        try:
            new = reseal_bound_hash(ring, bot_id, stored)
        except (EnvelopeError, ValueError) as exc:
            report["refused"].append({"kind": "webhook_secret_hash", "ref": bot_id,
                                      "reason": type(exc).__name__})
            continue
        if new == stored:
            report["already_current"] += 1
        elif dry_run or bots.replace_webhook_secret_hash(db, bot_id, stored, new):
            report["rehashed"] += 1
        else:
            report["changed_meanwhile"] += 1
    return report


def _stored_key_ids(db: Database) -> set[str]:
    """Server key ids still named by any stored envelope, policy HMAC, row MAC or webhook
    secret hash."""
    envelopes = [e for _, e in wallets.legacy_envelopes(db)]
    envelopes += [e for _, _, e in bots.umk_envelopes(db)]
    in_use = set()
    for envelope in envelopes:
        try:
            in_use |= key_ids_in_use([envelope])
        except EnvelopeError:
            in_use.add("?")
    for bot in bots.list_bots(db):
        if (key_id := _policy_key_id(bot.policy_hmac)) is not None:
            in_use.add(key_id)
    in_use |= set(mac_key_ids_in_use(db))  # bindings, terms, IOUs, retry jobs
    return in_use | {stored_hash_key_id(h) or "?" for _, h in bots.webhook_secret_hashes(db)}


@command
def cmd_keys_reencrypt(settings: Any, args: argparse.Namespace) -> Outcome:
    """Re-seal envelopes and webhook hashes, re-sign policies under the current server key."""
    with opened(settings) as ctx:
        ring = ctx.ring
        envelopes = _envelopes(ctx.db, ring, args.dry_run)
        policies = _policies(ctx.db, ring, args.dry_run)
        webhooks = _webhook_hashes(ctx.db, ring, args.dry_run)
        row_mac_report = {} if args.dry_run else reseal_all(ctx.db, ring)
        hashes = bots.webhook_hash_key_ids(ctx.db)
        in_use = _stored_key_ids(ctx.db)
    current = ring.current_key_id
    on_old = sum(n for kid, n in hashes.items() if kid != current)
    data = {
        "current_key_id": current, "loaded_key_ids": sorted(ring.key_ids), "dry_run": args.dry_run,
        "previous_key_ids": sorted(ring.previous_key_ids),
        "retired_key_ids": sorted(ring.retired_key_ids),
        "envelopes": envelopes, "policies": policies, "row_macs": row_mac_report,
        "webhook_secret_hashes": {"by_key_id": hashes, "on_old_keys": on_old, **webhooks},
        "key_ids_in_use": sorted(in_use),
        "retirable_key_ids": sorted(ring.previous_key_ids - in_use),
        "removable_key_ids": sorted(ring.key_ids - in_use - {current}),
    }
    refused_rows = envelopes["refused"] + policies["refused"] + webhooks["refused"]
    refused_macs = sum(counts["refused"] for counts in row_mac_report.values())
    verb = "would re-seal" if args.dry_run else "re-sealed"
    human = (f"{verb} {envelopes['reencrypted']} envelope(s) and {webhooks['rehashed']} webhook "
             f"secret hash(es), re-signed {policies['resigned']} policy HMAC(s) under {current} "
             f"({envelopes['already_current']} + {webhooks['already_current']} + "
             f"{policies['already_current']} already current); retirable key ids: "
             f"{', '.join(data['retirable_key_ids']) or 'none'}; removable key ids: "
             f"{', '.join(data['removable_key_ids']) or 'none'}")
    warning = None
    if refused_rows or refused_macs:
        refs = [r.get("ref") or r.get("bot_id") for r in refused_rows]
        warning = f"{len(refused_rows) + refused_macs} row(s) refused (tampered, unopenable or " \
            "under a retired key), left as they were: " + ", ".join(str(r) for r in refs) + (
                f" and {refused_macs} row MAC(s)" if refused_macs else "")
    if webhooks["unbound_bot_ids"]:
        human += f"; {len(webhooks['unbound_bot_ids'])} legacy webhook secret hash(es) not bound" \
                 " to their bot (upgraded on the bot's next alert, or `bot rotate-secret`): " + \
                 ", ".join(webhooks["unbound_bot_ids"])
    return Outcome(human, data, EXIT_REFUSED if refused_rows or refused_macs else EXIT_OK,
                   warning=warning)
