"""The embedded PostgreSQL (pgserver) that the daemon starts when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from config import Settings
from storage.database import Database

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

    def revive(self) -> bool:
        """Start the server again if its postmaster died (True when it had to): the daemon's
        database must come back on its own, without a restart of the daemon."""
        if self._server is None or self._leftovers() is None:
            return False
        with self._server._lock:  # pgserver's inter-process lock: a CLI may be starting it
            leftovers = self._leftovers()
            if leftovers is None:
                return False
            log.warning("embedded PostgreSQL is not running (data in %s): starting it again",
                        self.data_dir)
            if leftovers:
                # Its lock files name a dead pid, which may live on as a zombie (its parent,
                # init, may not reap it) that PostgreSQL would take for a running server.
                # PostgreSQL's shared-memory interlock still refuses to start while a backend
                # of the old server lives: then this raises, and the next call tries again.
                for lock in leftovers:
                    lock.unlink(missing_ok=True)
            self._server.ensure_postgres_running()
        log.info("embedded PostgreSQL up again")
        return True

    def _leftovers(self) -> list[Path] | None:
        """None while the postmaster runs; else the lock files its death left behind."""
        import psutil  # pgserver's own dependency, like the import below
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None:
            return []
        try:
            if info.process is not None and info.process.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:  # gone between the read and the look
            pass
        sockets = list(info.socket_dir.glob(".s.PGSQL.*.lock")) if info.socket_dir else []
        return [*sockets, self.data_dir / "postmaster.pid"]

    def stop(self) -> None:
        """Let go of the server; it stops if no other holder, here or elsewhere, remains."""
        if self._server is None:
            return
        _holders[self.data_dir] -= 1
        if _holders[self.data_dir] <= 0:
            del _holders[self.data_dir]
            self._server.cleanup()
        self._server = None


class Storage:
    """The database of this process: the embedded server or the one in DATABASE_URL."""

    def __init__(self, settings: Settings) -> None:
        self._embedded: EmbeddedPostgres | None = None
        dsn = settings.database_url
        if not dsn:
            self._embedded = EmbeddedPostgres(settings.state_dir)
            dsn = self._embedded.start()
        self.db = Database(dsn, size=settings.db_pool_size,
                           statement_timeout_ms=settings.db_statement_timeout_ms)
        self.revive_server = self._embedded.revive if self._embedded is not None else None

    def close(self) -> None:
        """Close the pool, then let go of the embedded server."""
        self.db.close()
        if self._embedded is not None:
            self._embedded.stop()
