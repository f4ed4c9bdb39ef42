"""Signal hashes: the same alert delivered twice must execute once.

TradingView re-delivers the same bytes. When the alert carries its own identity (a time or an
order id placeholder), the hash of (bot, body) is unique for ever. When it does not (the default
plain-text message repeats itself: buy 1, sell 1, buy 1 read the same), the hash also names the
receipt window, and the caller treats the previous window's hash as a duplicate too, so a
re-delivery that straddles a window boundary is still caught.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from trading.alerts import Signal

DEDUP_WINDOW_S = 60


@dataclass(frozen=True)
class SignalHashes:
    """The hash to store, and the hashes that would make this alert a duplicate."""

    primary: str
    also_duplicate_of: tuple[str, ...] = ()


def signal_hashes(bot_id: str, body: bytes, signal: Signal, received_at: float,
                  window_s: int = DEDUP_WINDOW_S) -> SignalHashes:
    """Hashes for one alert to `bot_id` received at unix time `received_at`."""

    def digest(*parts: bytes) -> str:
        return hashlib.sha256(b"\x00".join(parts)).hexdigest()

    base = (b"qv-signal-v1", bot_id.encode(), body.strip())
    if signal.time or signal.order_id:
        return SignalHashes(digest(*base))
    window = int(received_at // window_s)
    return SignalHashes(digest(*base, str(window).encode()),
                        (digest(*base, str(window - 1).encode()),))
