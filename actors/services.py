"""What actors and HTTP handlers share: settings, the database, and the root of the tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka

from config import Settings
from security.server_key import ServerKeyRing
from storage.database import Database
from venue.profiles import VenueProfile


@dataclass
class Services:
    """Handles passed to actors at construction; `root` is set once the tree is started."""

    settings: Settings
    db: Database
    admin_token: str
    profile: VenueProfile
    ring: ServerKeyRing
    root: pykka.ActorRef[Any] | None = None
