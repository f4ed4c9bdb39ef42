"""The server key ring from settings: SERVER_KEYS, the default key file, systemd credentials."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from config import load_settings
from security.errors import ServerKeyError
from security.keyring_config import ensure_key_file, parse_server_keys, server_key_ring
from tests.operator_cli.helpers import write_key


def _settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"STATE_DIR": str(tmp_path / "state"), **env})


def test_parse_keeps_order_and_refuses_junk() -> None:
    assert parse_server_keys(" a=file:/x , b=credential:y,") == {"a": "file:/x",
                                                                 "b": "credential:y"}
    for bad in ("a", "=file:/x", "a=", "a=file:/x,a=file:/y", "bad id=file:/x"):
        with pytest.raises(ServerKeyError):
            parse_server_keys(bad)


def test_default_key_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = server_key_ring(settings, environ={})
    path = tmp_path / "state" / "server.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    second = server_key_ring(settings, environ={})
    assert first.current_key_id == second.current_key_id == "k1"
    assert first.policy_keys() == second.policy_keys()
    assert [p.name for p in path.parent.iterdir()] == ["server.key"]  # no temporary left


def test_ensure_key_file_never_replaces_an_existing_key(tmp_path: Path) -> None:
    path = write_key(tmp_path / "server.key")
    before = path.read_bytes()
    assert ensure_key_file(path) == path and path.read_bytes() == before


def test_systemd_credential_is_the_default_under_systemd(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    write_key(creds / "server-key")
    ring = server_key_ring(_settings(tmp_path), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert ring.key_ids == {"k1"}
    assert not (tmp_path / "state" / "server.key").exists()


def test_first_key_is_current_unless_named(tmp_path: Path) -> None:
    a, b = write_key(tmp_path / "a.key"), write_key(tmp_path / "b.key")
    keys = f"old=file:{a},new=file:{b}"
    assert server_key_ring(_settings(tmp_path, SERVER_KEYS=keys)).current_key_id == "old"
    named = _settings(tmp_path, SERVER_KEYS=keys, SERVER_KEY_CURRENT="new")
    assert server_key_ring(named).current_key_id == "new"
    with pytest.raises(ServerKeyError, match="SERVER_KEY_CURRENT"):
        server_key_ring(_settings(tmp_path, SERVER_KEYS=keys, SERVER_KEY_CURRENT="other"))


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = write_key(tmp_path / "k.key")
    os.chmod(key, 0o644)
    with pytest.raises(ServerKeyError, match="chmod 600"):
        server_key_ring(_settings(tmp_path, SERVER_KEYS=f"k=file:{key}"))
