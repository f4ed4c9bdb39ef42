"""Runs the operator CLI as a real subprocess against a test database, and inspects the rows."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from security.server_key import ServerKeyRing, load_key_ring
from storage.database import Database

ENTRY = Path(__file__).resolve().parents[2] / "runtime.py"  # the real `quantumvault`
TABLES = ("wallets", "trading_bots", "published_bots", "subscriptions", "runtime_flags",
          "trade_refusals")


def write_key(path: Path) -> Path:
    """A 32-byte server key file with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path


@dataclass
class Result:
    """One CLI run: exit status, stdout, stderr, and stdout parsed as JSON when it is."""

    code: int
    out: str
    err: str
    args: tuple[str, ...]

    @property
    def json(self) -> dict[str, Any]:
        """stdout as exactly one JSON object (fails the test otherwise)."""
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert len(lines) == 1, (
            f"{self.args}: expected one JSON line on stdout, got {self.out!r}; "
            f"stderr ends {self.err[-2000:]!r}")
        value = json.loads(lines[0])
        assert isinstance(value, dict)
        return value

    def error_lines(self) -> list[str]:
        """stderr lines that are the CLI's own messages (not JSON log lines)."""
        return [line for line in self.err.splitlines() if line.startswith("quantumvault: ")]


@dataclass
class Cli:
    """`quantumvault ...` with this test's database, state dir and server keys."""

    env: dict[str, str]
    state_dir: Path
    runs: list[Result] = field(default_factory=list)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """Run one command; every run is kept for the secret search."""
        proc = subprocess.run([sys.executable, str(ENTRY), *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=90, cwd=self.state_dir)
        result = Result(proc.returncode, proc.stdout, proc.stderr, args)
        self.runs.append(result)
        return result

    def ok(self, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Run with --json, expect exit 0, return the JSON object."""
        result = self(*args, "--json", env=env)
        assert result.code == 0, (result.out, result.err)
        return result.json

    def ring(self, env: Mapping[str, str] | None = None) -> ServerKeyRing:
        """The ring the CLI loads from SERVER_KEYS / SERVER_KEY_CURRENT."""
        merged = {**self.env, **(env or {})}
        sources = dict(item.split("=", 1) for item in merged["SERVER_KEYS"].split(","))
        current = merged.get("SERVER_KEY_CURRENT") or next(iter(sources))
        return load_key_ring(sources, current)


def counts(db: Database) -> dict[str, int]:
    """Row counts of every table the CLI writes."""
    return {t: db.fetchone(f"SELECT count(*) AS n FROM {t}")["n"] for t in TABLES}  # type: ignore[index]


def snapshot(db: Database) -> list[Any]:
    """Every row of every table the CLI writes, to prove nothing changed."""
    return [db.fetchall(f"SELECT * FROM {t} ORDER BY 1") for t in TABLES]


def make_wallet(db: Database, ring: ServerKeyRing) -> str:
    """A stored wallet whose owner is its own agent (in-process, for storage/guard tests)."""
    from solders.keypair import Keypair

    from security.agent_keys import seal_agent_privkey_legacy
    from storage.wallets import insert_wallet

    keypair = Keypair()
    address = str(keypair.pubkey())
    insert_wallet(db, address=address, agent_public_key=address,
                  legacy_envelope=seal_agent_privkey_legacy(ring, address, bytes(keypair)))
    return address


def make_bot(db: Database, ring: ServerKeyRing, wallet: str, leverage: str = "5",
             max_position: str = "1000", source_published_bot_id: str | None = None) -> Any:
    """A stored bot with a valid policy HMAC under the ring's current key."""
    import uuid
    from decimal import Decimal

    from security.policy import BotPolicy, compute_policy_hmac
    from storage.bots import insert_bot
    from storage.subaccounts import next_subaccount_id

    bot_id = str(uuid.uuid4())
    kid = ring.current_key_id
    policy = BotPolicy(bot_id, "SOL-PERP", Decimal(leverage), Decimal(max_position))
    return insert_bot(db, bot_id=bot_id, wallet_address=wallet, name="t", market="SOL-PERP",
                      market_index=0, leverage=Decimal(leverage),
                      max_position_size=Decimal(max_position), webhook_secret_hash=None,
                      policy_hmac=compute_policy_hmac(ring.policy_keys()[kid], kid, policy),
                      source_published_bot_id=source_published_bot_id,
                      drift_subaccount_id=next_subaccount_id(db, wallet))
