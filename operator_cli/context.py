"""What a command works on: the daemon's database and, only when needed, the server key ring.

The database is opened as the daemon opens it (`storage.embedded.Storage`: the embedded
pgserver under STATE_DIR, shared with a running daemon, or DATABASE_URL), and pending
migrations are applied (idempotent, under an advisory lock). The key ring loads lazily, so
`estop` works even when the server key cannot be read. Log redaction is on for the whole
command (and undone afterwards if the command installed it, for in-process callers); loading
the ring registers its keys with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from config import Settings
from security.keyring_config import server_key_ring
from security.log_redaction import install_log_redaction, log_redaction_scope
from security.server_key import ServerKeyRing
from storage.database import Database
from storage.embedded import Storage
from storage.migrations import migrate


class Context:
    """Settings, database and (lazily) the server key ring of one command."""

    def __init__(self, settings: Settings, db: Database) -> None:
        """Hold the open database; the ring is loaded on first use."""
        self.settings = settings
        self.db = db
        self._ring: ServerKeyRing | None = None

    @property
    def ring(self) -> ServerKeyRing:
        """The server key ring from SERVER_KEYS (or the default key file/credential)."""
        if self._ring is None:
            self._ring = server_key_ring(self.settings)
            install_log_redaction(self._ring)
        return self._ring


@contextlib.contextmanager
def opened(settings: Settings) -> Iterator[Context]:
    """Open the database the daemon uses, migrate it, and close it afterwards."""
    with log_redaction_scope():
        storage = Storage(settings)
        try:
            migrate(storage.db)
            yield Context(settings, storage.db)
        finally:
            storage.close()
