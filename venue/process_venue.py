"""The venue of this process: its profile and, on the sandbox with no SANDBOX_URL, the child.

`quantumvault run` starts the sandbox as a child on SANDBOX_PORT; other commands (the CLI,
run while the daemon is up) find that child on the same port.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from config import Settings
from venue.profiles import VenueProfile, load_profile
from venue.sandbox_child import SandboxChild

log = logging.getLogger(__name__)


def sandbox_url(settings: Settings) -> str:
    """SANDBOX_URL, or the sandbox child `run` starts on 127.0.0.1:SANDBOX_PORT."""
    return (settings.sandbox_url or f"http://127.0.0.1:{settings.sandbox_port}").rstrip("/")


class ProcessVenue:
    """The profile this process trades on, owning the sandbox child when it started one."""

    def __init__(self, settings: Settings, env: Mapping[str, str], start_child: bool) -> None:
        self.child: SandboxChild | None = None
        values = dict(env)
        base: str | None = None
        if settings.venue == "sandbox" and not settings.sandbox_url:
            if start_child:
                self.child = SandboxChild(
                    settings.sandbox_port, settings.sandbox_seed,
                    settings.sandbox_slot_ms,
                    rpc_latency_ms=settings.sandbox_rpc_latency_ms,
                    rpc_rps_limit=settings.sandbox_rpc_rps_limit,
                    swift_latency_ms=settings.sandbox_swift_latency_ms,
                    fill_profile=settings.sandbox_fill_profile)
                base = self.child.url
                values.setdefault("RPC_BACKUP_URL", self.child.backup_rpc_url)
            else:
                base = sandbox_url(settings)
        try:
            self.profile: VenueProfile = load_profile(values, sandbox_url=base)
        except BaseException:
            self.close()
            raise

    def log_profile(self) -> None:
        """Log the profile at start, with a warning naming every provisional value."""
        log.info("venue profile: %s", self.profile.describe())
        if self.profile.provisional:
            log.warning("venue %s uses provisional values: %s", self.profile.name,
                        ", ".join(sorted(self.profile.provisional)))

    def close(self) -> None:
        """Stop the sandbox child if this process started one."""
        if self.child is not None:
            self.child.stop()
            self.child = None
