"""The embedded PostgreSQL (pgserver) that the daemon starts when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_holders: Counter[Path] = Counter()  # holders of each data directory within this process


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives under STATE_DIR and which listens on a Unix socket.

    pgserver counts the processes holding the same data directory, so a CLI command run while
    the daemon is up shares its server, and the server stops when the last holder lets go.
    Within one process (the demo runs CLI commands beside its daemon) holders are counted
    here, since pgserver's count is per process.
    """

    def __init__(self, state_dir: Path) -> None:
        self.data_dir = (state_dir / "pgdata").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its connection URI."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        _holders[self.data_dir] += 1
        log.info("embedded PostgreSQL up (data in %s)", self.data_dir)
        return self._server.get_uri()

    def stop(self) -> None:
        """Let go of the server; it stops if no other holder, here or elsewhere, remains."""
        if self._server is None:
            return
        _holders[self.data_dir] -= 1
        if _holders[self.data_dir] <= 0:
            del _holders[self.data_dir]
            self._server.cleanup()
        self._server = None
