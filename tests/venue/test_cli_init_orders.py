"""`quantumvault swift init-orders` on the sandbox: creates the account once, then reports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests
from solders.keypair import Keypair

from sandbox.server import SandboxServer
from tests.daemon import sandbox_fixture

ROOT = Path(__file__).resolve().parents[2]


sandbox = sandbox_fixture(seed=3, slot_ms=400)


def run_cli(sandbox: SandboxServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SANDBOX_URL": sandbox.url, "STATE_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, str(ROOT / "runtime.py"), "swift", "init-orders",
                           *args], env=env, capture_output=True, text=True, timeout=120)


def test_creates_the_signed_msg_user_orders_account_once(sandbox: SandboxServer,
                                                         tmp_path: Path) -> None:
    keypair = Keypair()
    key_file = tmp_path / "agent.json"
    key_file.write_text(json.dumps(list(bytes(keypair))))
    funded = requests.post(f"{sandbox.url}/sandbox/faucet", timeout=5, json={
        "authority": str(keypair.pubkey()), "quote": 100, "signed_msg_user_orders": False})
    assert funded.json()["signed_msg_user_orders"] is None

    first = run_cli(sandbox, tmp_path, "--keypair", str(key_file), "--num-orders", "4")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) | {"signature": None} == {
        "authority": str(keypair.pubkey()), "created": True, "state": "landed", "error": None,
        "signature": None}
    second = run_cli(sandbox, tmp_path, "--keypair", str(key_file))
    assert second.returncode == 0 and json.loads(second.stdout)["state"] == "exists"
    secret_forms = (str(keypair), bytes(keypair).hex(), json.dumps(list(bytes(keypair))))
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert not any(form in output for form in secret_forms)


def test_an_unfunded_authority_gets_a_clear_error(sandbox: SandboxServer, tmp_path: Path) -> None:
    key_file = tmp_path / "agent.json"
    key_file.write_text(json.dumps(list(bytes(Keypair()))))
    result = run_cli(sandbox, tmp_path, "--keypair", str(key_file))
    assert result.returncode == 1 and "RPC failed" in result.stderr


def test_a_bad_keypair_file_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]")
    result = run_cli(sandbox, tmp_path, "--keypair", str(bad))
    assert result.returncode == 2 and "is not a JSON array of 64 numbers" in result.stderr
