"""sd_notify: tell systemd we are ready, alive (watchdog) and stopping; a no-op outside systemd."""

from __future__ import annotations

import os
import socket

from supervision import SupervisorEvent


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(state.encode(), address)
    return True


def report_supervisor_event(event: SupervisorEvent) -> None:
    """Show the latest supervision event as the unit's STATUS line (`systemctl status`)."""
    notify(f"STATUS={event.supervisor}: {event.kind} {event.child} {event.detail}".rstrip())
