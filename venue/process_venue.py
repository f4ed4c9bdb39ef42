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
    return (settings["SANDBOX_URL"] or f"http://127.0.0.1:{settings['SANDBOX_PORT']}").rstrip("/")


class ProcessVenue:
    """The profile this process trades on, owning the sandbox child when it started one."""

    def __init__(self, settings: Settings, env: Mapping[str, str], start_child: bool) -> None:
        self.child: SandboxChild | None = None
        values = dict(env)
        base: str | None = None
        if settings["VENUE"] == "sandbox" and not settings["SANDBOX_URL"]:
            if start_child:
                self.child = SandboxChild(
                    settings["SANDBOX_PORT"], settings["SANDBOX_SEED"],
                    settings["SANDBOX_SLOT_MS"],
                    rpc_latency_ms=settings["SANDBOX_RPC_LATENCY_MS"],
                    rpc_rps_limit=settings["SANDBOX_RPC_RPS_LIMIT"],
                    swift_latency_ms=settings["SANDBOX_SWIFT_LATENCY_MS"],
                    fill_profile=settings["SANDBOX_FILL_PROFILE"])
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
