"""Build the server key ring from settings: SERVER_KEYS sources and SERVER_KEY_CURRENT.

SERVER_KEYS is "id=file:/path,id=credential:name". When it is empty:
- under systemd with a credential named "server-key" ($CREDENTIALS_DIRECTORY/server-key):
  "k1=credential:server-key";
- otherwise "k1=file:STATE_DIR/server.key", generated once (32 random bytes, mode 0600) if it
  does not exist. Two processes starting at once never see a half-written file: the key is
  written to a private temporary file and hard-linked into place, which fails if another
  process won the race (then its key is used).
SERVER_KEY_CURRENT empty means the only key, or the first one listed.
SERVER_KEYS_RETIRED lists ids of SERVER_KEYS that are distrusted (never the current one): what is
only under a retired key is refused, never migrated. Every other non-current id is "previous".
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from config import Settings
from security.errors import ServerKeyError
from security.server_key import KEY_LEN, ServerKeyRing, load_key_ring

DEFAULT_KEY_ID = "k1"
CREDENTIAL_NAME = "server-key"
KEY_FILE_NAME = "server.key"
_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}\Z")


def parse_server_keys(text: str) -> dict[str, str]:
    """Parse "id=source,id=source" into an ordered {id: source}; refuses duplicates."""
    sources: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, sep, source = item.partition("=")
        key_id, source = key_id.strip(), source.strip()
        if not sep or not _ID_RE.match(key_id) or not source:
            raise ServerKeyError(
                "SERVER_KEYS entries must look like id=file:/path or id=credential:name")
        if key_id in sources:
            raise ServerKeyError(f"SERVER_KEYS names key id {key_id!r} twice")
        sources[key_id] = source
    return sources


def ensure_key_file(path: Path) -> Path:
    """Create a 32-byte random key at `path` (mode 0600) unless one exists; returns the path."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_LEN))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def key_sources(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """SERVER_KEYS, or the default source (systemd credential, else STATE_DIR/server.key)."""
    configured = parse_server_keys(settings.server_keys)
    if configured:
        return configured
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / CREDENTIAL_NAME).is_file():
        return {DEFAULT_KEY_ID: f"credential:{CREDENTIAL_NAME}"}
    path = ensure_key_file(settings.state_dir / KEY_FILE_NAME)
    return {DEFAULT_KEY_ID: f"file:{path}"}


def server_key_ring(settings: Settings, environ: Mapping[str, str] | None = None) -> ServerKeyRing:
    """The process's server key ring; raises ServerKeyError with a message naming no key."""
    sources = key_sources(settings, environ)
    current = settings.server_key_current or next(iter(sources))
    if current not in sources:
        raise ServerKeyError(f"SERVER_KEY_CURRENT={current!r} is not an id in SERVER_KEYS")
    retired = retired_key_ids(settings)
    if current in retired:
        raise ServerKeyError(f"SERVER_KEYS_RETIRED names the current key id {current!r}")
    if unknown := sorted(set(retired) - set(sources)):
        raise ServerKeyError(f"SERVER_KEYS_RETIRED names {', '.join(map(repr, unknown))}, "
                             "not an id in SERVER_KEYS")
    return load_key_ring(sources, current, environ, retired)


def retired_key_ids(settings: Settings) -> tuple[str, ...]:
    """SERVER_KEYS_RETIRED as ids."""
    return settings.server_keys_retired
