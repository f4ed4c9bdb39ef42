"""Sub-account allocation through the real CLI with no venue behind it (the recording faucet
answers no JSON-RPC): the wallet's first bot needs none, a later one is refused whole unless
`--no-venue` allocates its id alone; ids follow each other per wallet and show in `bot show`."""

from __future__ import annotations

from storage.database import Database
from tests.operator_cli.helpers import Cli, snapshot


def _create(cli: Cli, wallet: str, *extra: str) -> list[str]:
    return ["bot", "create", "--wallet", wallet, "--market", "SOL-PERP", "--leverage", "2",
            "--max-position-usd", "100", *extra]


def test_ids_follow_each_other_and_a_venue_refusal_writes_nothing(cli: Cli, db: Database) -> None:
    owner = cli.ok("wallet", "create", "--no-fund")["wallet"]
    first = cli.ok(*_create(cli, owner))
    assert first["sub_account"]["id"] == 0 and first["sub_account"]["venue"] == "main account"
    before = snapshot(db)
    refused = cli(*_create(cli, owner), "--json")
    assert refused.code == 1 and "cannot read the venue" in refused.json["error"]
    assert snapshot(db) == before
    second = cli.ok(*_create(cli, owner, "--no-venue"))
    third = cli.ok(*_create(cli, owner, "--no-venue", "--fund-usd", "0"))
    assert [second["drift_subaccount_id"], third["drift_subaccount_id"]] == [1, 2]
    assert cli.ok("bot", "show", third["bot_id"])["sub_account"] == {
        "id": 2, "shared": False, "shared_with": [], "moved_from": None}
    cli.ok("bot", "publish", first["bot_id"], "--profit-share-percent", "5")
    other = cli.ok("wallet", "create", "--no-fund")["wallet"]
    cli.ok(*_create(cli, other))
    follow = cli.ok("bot", "subscribe", "--wallet", other, "--to", first["bot_id"],
                    "--capital-usd", "50", "--no-venue")
    assert follow["sub_account"]["id"] == 1
    provision = cli("bot", "provision", second["bot_id"], "--json")
    assert provision.code == 1 and "cannot read the venue" in provision.json["error"]
    bad = cli(*_create(cli, owner, "--fund-usd", "-1"), "--json")
    assert bad.code == 1 and "--fund-usd" in bad.json["error"]
    nothing = cli.ok("bot", "migrate-subaccounts")
    assert nothing["bots"] == [] and nothing["still_shared"] == 0
