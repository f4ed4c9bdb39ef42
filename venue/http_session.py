"""One pooled `requests` session per venue endpoint, its proxy settings read once.

`requests` consults the environment (proxy variables, .netrc) on every request of a session
that trusts it, which costs about a millisecond of CPU per call: at a fan-out's hundreds of
POSTs and reads that is the daemon's largest single cost. The environment cannot change under a
running daemon, so it is read once here and the session stops looking.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


def pooled_session(base_url: str, pool_size: int, pool_connections: int = 1) -> requests.Session:
    """A session with a connection pool for `base_url`, no retries, proxies fixed at creation."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_connections, pool_maxsize=pool_size,
                          max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.trust_env = False
    return session
