"""Signal hashes: identical deliveries collide, different alerts and bots do not."""

from trading.alerts import parse_alert
from trading.dedup import signal_hashes

PLAIN = b"order buy @ 1 filled on SOLUSD. New strategy position is 1"
TIMED = b'{"action": "buy", "contracts": 1, "timenow": "2026-11-21T10:00:00Z"}'


def test_an_alert_with_its_own_time_hashes_the_same_whenever_it_arrives() -> None:
    signal = parse_alert(TIMED)
    first = signal_hashes("bot", TIMED, signal, received_at=1_000.0)
    later = signal_hashes("bot", TIMED, signal, received_at=9_000.0)
    assert first.primary == later.primary and first.also_duplicate_of == ()
    assert signal_hashes("other", TIMED, signal, 1_000.0).primary != first.primary


def test_a_timeless_alert_is_a_duplicate_only_within_the_window() -> None:
    signal = parse_alert(PLAIN)
    first = signal_hashes("bot", PLAIN, signal, received_at=119.0)
    redelivered = signal_hashes("bot", PLAIN, signal, received_at=121.0)  # next window
    much_later = signal_hashes("bot", PLAIN, signal, received_at=1_000.0)
    assert first.primary in redelivered.also_duplicate_of
    assert much_later.primary != first.primary
    assert first.primary not in much_later.also_duplicate_of
