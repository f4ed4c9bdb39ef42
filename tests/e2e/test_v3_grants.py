"""Security V3 end to end: V3 wallets sign only through their owner's grant.

Owners are real ed25519 keypairs that sign the UMK message; wallets, bots and grants are made
with the operator CLI; alerts go through the webhook; what reaches the sandbox is counted there.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
from prometheus_client import REGISTRY
from solders.keypair import Keypair

import runtime
from security.key_hierarchy import umk_message
from tests.e2e.stack import WAIT_S, Stack, copies, environment

OPEN_LONG = "order buy @ 1 filled on SOLUSD. New strategy position is 1"


def body(action: str, position: int, tag: str) -> str:
    """A JSON alert (distinct per tag, so it is never a duplicate)."""
    return json.dumps({"action": action, "contracts": 1, "position_size": position,
                       "timenow": tag})


def signature_file(tmp: Path, owner: Keypair, name: str = "owner") -> str:
    """The owner's real signature of its UMK message, in a file as the CLI wants it."""
    path = tmp / f"{name}.sig"
    path.write_text(str(owner.sign_message(umk_message(str(owner.pubkey())))))
    return str(path)


def cli_fails(stack: Stack, *args: str) -> tuple[int, str]:
    """Run one CLI command expected to fail; (exit code, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with environment(stack.env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = runtime.main(list(args))
    return code, err.getvalue()


def v3_wallet(stack: Stack, tmp: Path, name: str) -> dict[str, Any]:
    """A funded V3 wallet: {owner keypair, wallet, agent, sig (file)}."""
    owner = Keypair()
    sig = signature_file(tmp, owner, name)
    made = stack.cli("wallet", "create", "--owner", str(owner.pubkey()),
                     "--owner-signature-file", sig, "--fund", "1000")
    assert made["key_path"] == "v3" and made["legacy_key_id"] is None
    return {"owner": owner, "wallet": made["wallet"], "agent": made["agent_public_key"],
            "sig": sig}


def v3_bot(stack: Stack, tmp: Path, name: str = "src") -> dict[str, Any]:
    """A V3 wallet and a bot on it (not yet authorized)."""
    wallet = v3_wallet(stack, tmp, name)
    bot = stack.cli("bot", "create", "--wallet", wallet["wallet"], "--market", "SOL-PERP",
                    "--leverage", "5", "--max-position-usd", "300")
    return {**wallet, "bot_id": bot["bot_id"], "secret": bot["webhook_secret"]}


def wait_for_expiry(stack: Stack, bot_id: str) -> None:
    """Wait until the bot's grant has expired: nothing announces an expiry, so this waits once
    for the time the database says is left (the event here is time passing), then checks."""
    left = stack.db.fetchone("SELECT extract(epoch FROM execution_expires_at - now()) AS s"
                             " FROM trading_bots WHERE id = %s", (bot_id,))["s"]
    assert left is not None and float(left) < WAIT_S
    gevent.sleep(max(0.0, float(left)) + 0.01)  # past the instant, not on it
    assert stack.db.fetchone("SELECT now() >= execution_expires_at AS over FROM trading_bots"
                             " WHERE id = %s", (bot_id,))["over"]


def refusals(reason: str, origin: str) -> float:
    return REGISTRY.get_sample_value("signing_refusals_total",
                                     {"reason": reason, "origin": origin}) or 0.0


def subscribe(stack: Stack, source: dict[str, Any], wallet: str, *extra: str) -> str:
    made = stack.cli("bot", "subscribe", "--wallet", wallet, "--to", source["bot_id"],
                     "--capital-usd", "200", *extra)
    return str(made["subscriber_bot_id"])


def test_a_v3_bot_trades_only_while_authorized_and_subscribers_always_get_theirs(
        stack: Stack, tmp_path: Path) -> None:
    source = v3_bot(stack, tmp_path)
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    follower = stack.cli("wallet", "create", "--fund", "1000")  # a legacy subscriber
    subscribe(stack, source, follower["wallet"])
    shown = stack.cli("bot", "show", source["bot_id"])
    assert shown["key_path"] == "v3" and shown["grant"]["state"] == "none"

    before = refusals("auth_disabled", "webhook")
    first = stack.alert(source, OPEN_LONG).json()["signal_id"]  # never authorized
    assert stack.wait(first) == {first: "skipped"}
    assert stack.story(first)["status_reason"] == "auth_disabled"
    assert stack.orders_reaching_sandbox(source["agent"]) == 0
    assert refusals("auth_disabled", "webhook") == before + 1
    (copy,) = copies(stack, first).values()
    assert stack.wait(copy) == {copy: "done"}

    granted = stack.cli("bot", "authorize", source["bot_id"], "--owner-signature-file",
                        source["sig"], "--hours", "2")
    assert granted["authorized"] and stack.cli("bot", "show", source["bot_id"])["grant"][
        "state"] == "active"
    second = stack.alert(source, body("buy", 1, "after-grant")).json()["signal_id"]
    assert stack.wait(second) == {second: "done"}
    assert stack.orders_reaching_sandbox(source["agent"]) == 1
    assert stack.position(source["agent"]) > 0

    stack.cli("bot", "revoke", source["bot_id"])
    assert stack.cli("bot", "show", source["bot_id"])["grant"]["state"] == "revoked"
    third = stack.alert(source, body("sell", 0, "after-revoke")).json()["signal_id"]
    assert stack.wait(third) == {third: "skipped"}
    assert stack.story(third)["status_reason"] == "auth_disabled"
    assert stack.orders_reaching_sandbox(source["agent"]) == 1  # nothing more was signed
    (copy,) = copies(stack, third).values()
    assert stack.wait(copy) == {copy: "done"}  # the subscriber closed its copy all the same
    assert stack.position(follower["agent_public_key"]) == 0

    # the lapsed grant with a position open: flatten cannot sign, and it is shown and counted
    gauge = REGISTRY.get_sample_value("v3_grants_lapsed_with_position")
    assert gauge is not None and gauge >= 1
    stack.cli("estop", "set", "--wallet", source["wallet"], "--flatten", "--reason", "drill")
    (flatten,) = [r["id"] for r in stack.db.fetchall(
        "SELECT id FROM webhook_signals WHERE trading_bot_id = %s AND source = 'flatten'",
        (source["bot_id"],))]
    assert stack.wait(flatten) == {flatten: "failed"}
    assert stack.story(flatten)["status_reason"] == "auth_disabled"
    assert stack.orders_reaching_sandbox(source["agent"]) == 1
    assert stack.position(source["agent"]) > 0  # never closed through the server key
    stack.cli("estop", "clear", "--wallet", source["wallet"])


def test_an_expired_grant_signs_nothing_and_subscribers_still_trade(
        stack: Stack, tmp_path: Path) -> None:
    source = v3_bot(stack, tmp_path)
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    follower = stack.cli("wallet", "create", "--fund", "1000")
    subscribe(stack, source, follower["wallet"])
    stack.cli("bot", "authorize", source["bot_id"], "--owner-signature-file", source["sig"],
              "--hours", "0.0003")  # about a second
    wait_for_expiry(stack, source["bot_id"])
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "skipped"}
    assert stack.story(signal_id)["status_reason"] == "auth_expired"
    assert stack.orders_reaching_sandbox(source["agent"]) == 0
    (copy,) = copies(stack, signal_id).values()
    assert stack.wait(copy) == {copy: "done"}
    assert stack.position(follower["agent_public_key"]) > 0
    assert stack.cli("bot", "show", source["bot_id"])["grant"]["state"] == "expired"


def test_a_v3_subscriber_trades_only_with_a_grant(stack: Stack, tmp_path: Path) -> None:
    source = stack.new_bot(max_usd="300")
    stack.cli("bot", "publish", source["bot_id"], "--profit-share-percent", "10")
    granted, ungranted = v3_wallet(stack, tmp_path, "a"), v3_wallet(stack, tmp_path, "b")
    with_grant = subscribe(stack, source, granted["wallet"], "--owner-signature-file",
                           granted["sig"])
    without = subscribe(stack, source, ungranted["wallet"])
    signal_id = stack.alert(source, OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    made = copies(stack, signal_id)
    assert stack.wait(*made.values()) == {made[with_grant]: "done", made[without]: "skipped"}
    assert stack.story(made[without])["status_reason"] == "auth_disabled"
    assert stack.orders_reaching_sandbox(ungranted["agent"]) == 0
    assert stack.orders_reaching_sandbox(granted["agent"]) == 1
    assert stack.position(granted["agent"]) > 0

    stack.cli("bot", "authorize", without, "--owner-signature-file", ungranted["sig"])
    later = stack.alert(source, body("sell", 0, "close")).json()["signal_id"]
    stack.wait(later)
    made = copies(stack, later)
    assert stack.wait(*made.values()) == {made[with_grant]: "done", made[without]: "done"}
    assert stack.position(granted["agent"]) == 0


@pytest.mark.parametrize("stack", [{"LEGACY_KEY_PATH": "off"}], indirect=True)
def test_with_the_legacy_path_off_a_legacy_wallet_signs_nothing(stack: Stack,
                                                                tmp_path: Path) -> None:
    legacy = stack.new_bot(max_usd="300")
    v3 = v3_bot(stack, tmp_path)
    stack.cli("bot", "authorize", v3["bot_id"], "--owner-signature-file", v3["sig"])
    shown = stack.cli("wallet", "show")
    assert shown["legacy_key_path"] == "off" and shown["legacy_dependent"] == [legacy["wallet"]]
    refused = stack.alert(legacy, OPEN_LONG).json()["signal_id"]
    traded = stack.alert(v3, OPEN_LONG).json()["signal_id"]
    assert stack.wait(refused, traded) == {refused: "skipped", traded: "done"}
    assert stack.story(refused)["status_reason"] == "legacy_key_path_off"
    assert stack.orders_reaching_sandbox(legacy["agent"]) == 0
    assert stack.orders_reaching_sandbox(v3["agent"]) == 1


def test_a_wrong_owner_signature_is_refused_with_a_clear_message(stack: Stack,
                                                                 tmp_path: Path) -> None:
    owner, stranger = Keypair(), Keypair()
    forged = tmp_path / "forged.sig"
    forged.write_text(str(stranger.sign_message(umk_message(str(owner.pubkey())))))
    code, err = cli_fails(stack, "wallet", "create", "--owner", str(owner.pubkey()),
                          "--owner-signature-file", str(forged), "--no-fund")
    assert code == 1 and "does not verify" in err and "umk-message" in err
    bot = v3_bot(stack, tmp_path)
    code, err = cli_fails(stack, "bot", "authorize", bot["bot_id"], "--owner-signature-file",
                          str(forged))
    assert code == 1 and "does not verify" in err
    code, err = cli_fails(stack, "bot", "authorize", bot["bot_id"], "--owner-signature-file",
                          bot["sig"], "--hours", "721")
    assert code == 1 and "--hours" in err
    assert stack.cli("bot", "show", bot["bot_id"])["grant"]["state"] == "none"


def test_a_v3_wallets_second_bot_gets_its_sub_account_through_the_owner(
        stack: Stack, tmp_path: Path) -> None:
    first = v3_bot(stack, tmp_path)  # sub-account 0: nothing to create
    args = ("bot", "create", "--wallet", first["wallet"], "--market", "SOL-PERP", "--leverage",
            "2", "--max-position-usd", "100")
    code, err = cli_fails(stack, *args)
    assert code == 1 and "owner's signature" in err  # never the server key for a V3 wallet
    second = stack.cli(*args, "--owner-signature-file", first["sig"])
    assert second["sub_account"]["id"] == 1 and second["sub_account"]["venue"] == "created"
    stack.cli("bot", "authorize", second["bot_id"], "--owner-signature-file", first["sig"])
    before = stack.orders_reaching_sandbox(first["agent"])  # the sub-account's creation
    signal_id = stack.alert({"bot_id": second["bot_id"], "secret": second["webhook_secret"]},
                            OPEN_LONG).json()["signal_id"]
    assert stack.wait(signal_id) == {signal_id: "done"}
    assert stack.orders_reaching_sandbox(first["agent"]) == before + 1
    fills = requests.get(f"{stack.sandbox.url}/sandbox/fills", timeout=5, params={
        "authority": first["agent"], "sub_account_id": 1}).json()["fills"]
    assert len(fills) == 1  # on the second bot's own sub-account
