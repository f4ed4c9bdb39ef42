"""Server key loading (file, systemd credential, permissions) and zero-downtime rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from security.envelope import PURPOSE_AGENT_PRIVKEY, Binding, parse_header
from security.errors import EnvelopeAuthFailed, ServerKeyError, UnknownKeyId
from security.server_key import (
    SealedItem,
    ServerKeyRing,
    key_ids_in_use,
    load_key_ring,
    load_server_key_credential,
    load_server_key_file,
    reencrypt_all,
)
from tests.security.helpers import SERVER_KEY_NEW, SERVER_KEY_OLD, ring, wallet

KEY = bytes(range(50, 82))


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _binding(n: int = 0) -> Binding:
    return Binding(wallet()[1], f"{PURPOSE_AGENT_PRIVKEY}.{n}")


@pytest.mark.parametrize(
    "content",
    [KEY, KEY.hex().encode() + b"\n", base64.b64encode(KEY), base64.urlsafe_b64encode(KEY)],
)
def test_file_formats(tmp_path: Path, content: bytes) -> None:
    assert load_server_key_file(_write(tmp_path / "k", content)) == KEY


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610, 0o601])
def test_group_or_world_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "k", KEY, mode)
    with pytest.raises(ServerKeyError) as info:
        load_server_key_file(path)
    assert "chmod" in str(info.value)
    assert KEY.hex() not in str(info.value)


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    assert load_server_key_file(_write(tmp_path / "k", KEY, 0o400)) == KEY


@pytest.mark.parametrize("content", [b"", b"short", b"z" * 64, KEY + b"\x00", b"ab" * 31])
def test_bad_contents_are_refused_without_echo(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(ServerKeyError) as info:
        load_server_key_file(_write(tmp_path / "k", content))
    if content:
        assert content.decode("latin-1") not in str(info.value)


def test_symlink_and_directory_are_refused(tmp_path: Path) -> None:
    target = _write(tmp_path / "k", KEY)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ServerKeyError):
        load_server_key_file(link)
    with pytest.raises(ServerKeyError):
        load_server_key_file(tmp_path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServerKeyError):
        load_server_key_file(tmp_path / "absent")


def test_systemd_credential(tmp_path: Path) -> None:
    _write(tmp_path / "qv-server-key", KEY, 0o400)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert load_server_key_credential("qv-server-key", env) == KEY
    with pytest.raises(ServerKeyError):
        load_server_key_credential("../qv-server-key", env)
    with pytest.raises(ServerKeyError):
        load_server_key_credential("qv-server-key", {})


def test_load_key_ring_from_sources(tmp_path: Path) -> None:
    _write(tmp_path / "old", SERVER_KEY_OLD)
    _write(tmp_path / "cred", SERVER_KEY_NEW)
    loaded = load_key_ring(
        {"k-old": f"file:{tmp_path / 'old'}", "k-new": "credential:cred"},
        "k-new",
        {"CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert loaded.current_key_id == "k-new"
    sealed = ring("k-old").seal(b"secret-agent-key", _binding())
    assert loaded.open(sealed, _binding()) == b"secret-agent-key"
    with pytest.raises(ServerKeyError):
        load_key_ring({"k": "env:QV_KEY"}, "k")


def test_ring_refuses_bad_construction() -> None:
    with pytest.raises(ServerKeyError):
        ServerKeyRing({"a": KEY}, "b")
    with pytest.raises(ServerKeyError):
        ServerKeyRing({"a": b"short"}, "a")


def test_ring_repr_shows_ids_only() -> None:
    text = repr(ring())
    assert "k-old" in text and SERVER_KEY_OLD.hex() not in text and "\\x11" not in text


def test_purposes_use_different_keys() -> None:
    r = ring()
    sealed = r.seal(b"payload-123", _binding(1))
    with pytest.raises(EnvelopeAuthFailed):
        r.open(sealed, _binding(2))


def test_rotation_round_trip_then_old_key_removed() -> None:
    old_ring = ring("k-old")
    items = [SealedItem(ref=n, envelope=old_ring.seal(f"s{n}".encode() * 4, _binding(n)),
                        binding=_binding(n)) for n in range(3)]
    # Deploy: both keys loaded, new key current; the daemon still opens old envelopes.
    window = old_ring.with_key("k-new2", bytes(range(32)), make_current=True)
    assert window.open(items[0].envelope, items[0].binding) == b"s0" * 4
    fresh = SealedItem("fresh", window.seal(b"fresh-value", _binding(9)), _binding(9))
    result = reencrypt_all(window, [*items, fresh])
    assert result.already_current == 1
    assert [i.ref for i in result.updated] == [0, 1, 2]
    assert key_ids_in_use(i.envelope for i in result.updated) == {"k-new2"}
    # Old keys removable afterwards: every re-sealed envelope opens without them.
    final = window.without("k-old").without("k-new")
    assert final.key_ids == {"k-new2"}
    for before, after in zip(items, result.updated, strict=True):
        assert final.open(after.envelope, after.binding) == old_ring.open(
            before.envelope, before.binding
        )
    with pytest.raises(UnknownKeyId):
        final.open(items[0].envelope, items[0].binding)


def test_reencrypt_keeps_binding() -> None:
    r = ring("k-new")
    sealed = ring("k-old").seal(b"agent-key-bytes", _binding(1))
    with pytest.raises(EnvelopeAuthFailed):
        r.reencrypt(sealed, _binding(2))
    new = r.reencrypt(sealed, _binding(1))
    assert parse_header(new).key_id == "k-new"
    assert r.reencrypt(new, _binding(1)) == new


def test_current_key_cannot_be_removed() -> None:
    with pytest.raises(ServerKeyError):
        ring("k-old").without("k-old")
    with pytest.raises(ServerKeyError):
        ring("k-old").with_key("k-new", KEY)


def test_umk_key_ids_are_reserved() -> None:
    with pytest.raises(ServerKeyError):
        ServerKeyRing({"umk-v1.key_privkey": KEY}, "umk-v1.key_privkey")
