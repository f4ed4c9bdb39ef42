"""`bot create|publish|subscribe|rotate-secret|list|show` through the real CLI."""

from __future__ import annotations

from decimal import Decimal

import pytest

from security.policy import verify_policy_hmac
from security.webhook_auth import authenticate_webhook
from storage.bots import get_bot
from storage.database import Database
from tests.operator_cli.helpers import Cli, snapshot


@pytest.fixture
def owner(cli: Cli) -> str:
    """A wallet with a bot to come."""
    return cli.ok("wallet", "create", "--no-fund")["wallet"]


@pytest.fixture
def follower(cli: Cli) -> str:
    """A second wallet, to subscribe."""
    return cli.ok("wallet", "create", "--no-fund")["wallet"]


def _create(cli: Cli, wallet: str, leverage: str = "5", max_usd: str = "1000",
            *extra: str) -> dict:
    return cli.ok("bot", "create", "--wallet", wallet, "--market", "SOL-PERP", "--leverage",
                  leverage, "--max-position-usd", max_usd, *extra)


def test_create_stores_the_hash_and_policy_and_shows_the_secret_once(
    cli: Cli, db: Database, owner: str
) -> None:
    out = _create(cli, owner, "3.5", "2500.5")
    assert out["bot_id"] == out["id"] and out["market"] == "SOL-PERP" and out["market_index"] == 0
    assert out["leverage"] == "3.5" and out["max_position_usd"] == "2500.5"
    assert out["webhook_secret"].startswith("qvwh_") and out["webhook_secret_set"] is True
    bot = get_bot(db, out["bot_id"])
    assert bot is not None and bot.wallet_address == owner
    assert bot.leverage == Decimal("3.5") and bot.max_position_size == Decimal("2500.5")
    ring = cli.ring()
    assert out["webhook_secret"] not in str(bot.webhook_secret_hash)
    assert authenticate_webhook(ring, bot.id, out["webhook_secret"],
                                bot.webhook_secret_hash).ok
    # bound to its bot: the same hash on another bot's row authenticates nothing
    assert not authenticate_webhook(ring, "another-bot", out["webhook_secret"],
                                    bot.webhook_secret_hash).ok
    assert verify_policy_hmac(ring.policy_keys(), bot.policy, bot.policy_hmac).ok


def test_market_symbols_map_to_drift_indexes(cli: Cli, owner: str) -> None:
    out = cli.ok("bot", "create", "--wallet", owner, "--market", "eth", "--leverage", "2",
                 "--max-position-usd", "10", "--name", "eth trend")
    assert (out["market"], out["market_index"], out["name"]) == ("ETH-PERP", 2, "eth trend")


BAD_CREATE = [
    ("--market", "NOPE-PERP", "unknown perp market"),
    ("--leverage", "0", "--leverage"),
    ("--leverage", "-2", "--leverage"),
    ("--leverage", "1000", "--leverage"),
    ("--leverage", "2.555", "decimal places"),
    ("--leverage", "NaN", "--leverage"),
    ("--max-position-usd", "-5", "--max-position-usd"),
    ("--max-position-usd", "0", "--max-position-usd"),
    ("--max-position-usd", "1e20", "--max-position-usd"),
    ("--wallet", "UnknownWa11et", "unknown wallet"),
]


def test_create_refuses_bad_input_and_writes_nothing(cli: Cli, db: Database, owner: str) -> None:
    before = snapshot(db)
    for flag, value, says in BAD_CREATE:
        args = {"--wallet": owner, "--market": "SOL-PERP", "--leverage": "5",
                "--max-position-usd": "1000", flag: value}
        result = cli("bot", "create", *[x for kv in args.items() for x in kv], "--json")
        assert result.code == 1, (flag, value)
        assert says in result.json["error"], (flag, value, result.json)
        assert len(result.error_lines()) == 1 and says in result.error_lines()[0]
    assert snapshot(db) == before


def test_publish_and_its_refusals(cli: Cli, db: Database, owner: str) -> None:
    bot = _create(cli, owner)["bot_id"]
    before = snapshot(db)
    for percent in ("-1", "100.01", "x"):
        bad = cli("bot", "publish", bot, "--profit-share-percent", percent, "--json")
        assert bad.code == 1 and "--profit-share-percent" in bad.json["error"]
    assert cli("bot", "publish", "no-such-bot", "--profit-share-percent", "5").code == 1
    assert snapshot(db) == before
    out = cli.ok("bot", "publish", bot, "--profit-share-percent", "12.5")
    assert out["bot_id"] == bot and out["profit_share_percent"] == "12.5"
    row = db.fetchone("SELECT * FROM published_bots WHERE id = %s", (out["published_bot_id"],))
    assert row is not None and row["trading_bot_id"] == bot
    assert row["creator_wallet_address"] == owner
    again = cli("bot", "publish", bot, "--profit-share-percent", "10")
    assert again.code == 1 and "already published" in again.err


def test_subscribe_creates_the_followers_own_bot(
    cli: Cli, db: Database, owner: str, follower: str
) -> None:
    source = _create(cli, owner, "4", "5000")["bot_id"]
    published = cli.ok("bot", "publish", source, "--profit-share-percent", "10")
    out = cli.ok("bot", "subscribe", "--wallet", follower, "--to", source, "--capital-usd", "250",
                 "--leverage", "2.5")
    assert out["source_bot_id"] == source
    assert out["published_bot_id"] == published["published_bot_id"]
    sub = get_bot(db, out["subscriber_bot_id"])
    assert sub is not None and sub.wallet_address == follower and sub.market == "SOL-PERP"
    assert sub.leverage == Decimal("2.5") and sub.max_position_size == Decimal("625")
    assert sub.source_published_bot_id == published["published_bot_id"]
    assert sub.webhook_secret_hash is None
    assert verify_policy_hmac(cli.ring().policy_keys(), sub.policy, sub.policy_hmac).ok
    row = db.fetchone("SELECT * FROM subscriptions WHERE id = %s", (out["subscription_id"],))
    assert row is not None and row["subscriber_bot_id"] == sub.id and row["capital_usd"] == 250
    default = cli.ok("bot", "subscribe", "--wallet", cli.ok("wallet", "create", "--no-fund")[
        "wallet"], "--to", published["published_bot_id"], "--capital-usd", "100")
    assert default["leverage"] == "4"


def test_subscribe_refusals_write_nothing(
    cli: Cli, db: Database, owner: str, follower: str
) -> None:
    source = _create(cli, owner, "3")["bot_id"]
    unpublished = _create(cli, owner, "5", "1000", "--no-venue")["bot_id"]  # no RPC here
    cli.ok("bot", "publish", source, "--profit-share-percent", "5")
    copy = cli.ok("bot", "subscribe", "--wallet", follower, "--to", source, "--capital-usd",
                  "10")["subscriber_bot_id"]
    third = cli.ok("wallet", "create", "--no-fund")["wallet"]
    cases = [
        (["--wallet", third, "--to", unpublished, "--capital-usd", "10"], "not published"),
        (["--wallet", third, "--to", "missing", "--capital-usd", "10"], "unknown bot"),
        (["--wallet", owner, "--to", source, "--capital-usd", "10"], "its own bot"),
        (["--wallet", third, "--to", source, "--capital-usd", "-10"], "--capital-usd"),
        (["--wallet", third, "--to", source, "--capital-usd", "0"], "--capital-usd"),
        (["--wallet", third, "--to", source, "--capital-usd", "10", "--leverage", "3.01"],
         "exceeds the source"),
        (["--wallet", "nobody", "--to", source, "--capital-usd", "10"], "unknown wallet"),
        (["--wallet", follower, "--to", source, "--capital-usd", "10"], "already follows"),
    ]
    before = snapshot(db)
    for args, says in cases:
        result = cli("bot", "subscribe", *args, "--json")
        assert result.code == 1, args
        assert says in result.json["error"], (args, result.json)
    republish = cli("bot", "publish", copy, "--profit-share-percent", "5")
    assert republish.code == 1 and "subscriber bot" in republish.err
    rotate = cli("bot", "rotate-secret", copy)
    assert rotate.code == 1 and "takes no webhook" in rotate.err
    assert snapshot(db) == before


def test_rotate_secret_replaces_the_old_one(cli: Cli, db: Database, owner: str) -> None:
    created = _create(cli, owner)
    rotated = cli.ok("bot", "rotate-secret", created["bot_id"])
    assert rotated["webhook_secret"] != created["webhook_secret"]
    bot = get_bot(db, created["bot_id"])
    assert bot is not None
    ring = cli.ring()
    assert authenticate_webhook(ring, bot.id, rotated["webhook_secret"],
                                bot.webhook_secret_hash).ok
    old = authenticate_webhook(ring, bot.id, created["webhook_secret"], bot.webhook_secret_hash)
    assert not old.ok and old.reason == "webhook_secret_mismatch"
    assert cli("bot", "rotate-secret", "missing").code == 1


def test_list_and_show_never_print_a_secret_or_hash(
    cli: Cli, db: Database, owner: str, follower: str
) -> None:
    created = _create(cli, owner)
    cli.ok("bot", "publish", created["bot_id"], "--profit-share-percent", "7")
    sub = cli.ok("bot", "subscribe", "--wallet", follower, "--to", created["bot_id"],
                 "--capital-usd", "100")
    bot = get_bot(db, created["bot_id"])
    assert bot is not None and bot.webhook_secret_hash and bot.policy_hmac
    listing = cli.ok("bot", "list")
    assert listing["count"] == 2
    assert {b["id"] for b in listing["bots"]} == {created["bot_id"], sub["subscriber_bot_id"]}
    assert all(b["policy"] == "ok" for b in listing["bots"])
    shown = cli.ok("bot", "show", created["bot_id"])
    assert shown["subscribers"] == 1 and shown["profit_share_percent"] == "7"
    assert shown["wallet_emergency_stop"] == "none" and "webhook_secret" not in shown
    human = [cli("bot", "list"), cli("bot", "show", created["bot_id"]),
             cli("bot", "list", "--wallet", owner)]
    assert all(r.code == 0 for r in human)
    digest = bot.webhook_secret_hash.split(".")[-1]
    mac = bot.policy_hmac.split(".")[-1]
    for result in [*human, *cli.runs[-5:]]:
        text = result.out + result.err
        assert created["webhook_secret"] not in text
        assert digest not in text and mac not in text


def test_an_edited_policy_row_shows_as_refused(cli: Cli, db: Database, owner: str) -> None:
    bot = _create(cli, owner)["bot_id"]
    db.execute("UPDATE trading_bots SET leverage = 50 WHERE id = %s", (bot,))
    assert cli.ok("bot", "show", bot)["policy"] == "policy_hmac_mismatch"
