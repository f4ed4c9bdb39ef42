"""The local alert journal: where authenticated alerts wait while PostgreSQL is unreachable.

TradingView never resends an alert, so an alert refused during a database outage (a managed
database fails over in 30-60 s) is a lost trade. While the database does not answer, the
webhook appends each authenticated alert to this journal instead (one JSON line per alert,
written and fsync'd before the answer: 202 `"queued": "journal"`), with the signal id it
assigned at intake. The journal lives under STATE_DIR/journal/ as numbered segments; appends
go to the newest one, and `replay` seals the segments, commits their records in arrival order
(through `record_signal`: deduplicated as usual, keeping the intake's id and receipt time) and
deletes each segment only after its records are committed. A crash during a replay loses
nothing and doubles nothing: the next replay finds the committed records by their id or hash.

Bounds: JOURNAL_MAX_BYTES (all segments together) and JOURNAL_MAX_AGE_S (once the oldest
record waiting is older, the outage is longer than the journal covers): an alert beyond
either, or one that cannot be written, is refused (the webhook answers 503).

A record older than SIGNAL_STALE_S when it is replayed is recorded `expired` (reduce-only ones
never go stale, as for signals a crash interrupted); one whose bot's webhook secret changed since it
was accepted is recorded `rejected`. The journal belongs to its machine's STATE_DIR: only a
daemon started on that STATE_DIR replays it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent.lock
import psycopg2

from storage.database import Database, PoolTimeout
from storage.secret_cache import SecretCache, secret_fingerprint
from storage.signals import record_rejection, record_signal
from trading.alerts import never_stale

log = logging.getLogger(__name__)

DATABASE_UNREACHABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, PoolTimeout)
"""What "the database is unreachable" is: connection refused or lost, or no pooled connection
free in time. Any other error is a real failure and is not journaled around."""

_SEGMENT_PREFIX = "segment-"
_SEGMENT_SUFFIX = ".jsonl"


class JournalRefused(Exception):
    """The alert cannot be kept: the journal is full, covers too long an outage, or cannot be
    written."""


@dataclass(frozen=True)
class JournalRecord:
    """One authenticated alert, as the webhook would have committed it."""

    signal_id: str
    bot_id: str
    primary_hash: str
    duplicate_hashes: tuple[str, ...]
    source: str
    raw_body: str
    parsed: dict[str, Any]
    received_at: float
    secret_fingerprint: str

    def line(self) -> bytes:
        """The record as one JSON line."""
        return (json.dumps(asdict(self), separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> JournalRecord:
        """Parse one line written by `line` (ValueError/KeyError/TypeError when it is not)."""
        data = json.loads(line)
        data["duplicate_hashes"] = tuple(data["duplicate_hashes"])
        return cls(**data)


@dataclass(frozen=True)
class Segment:
    """One sealed journal file and the records it holds, in arrival order."""

    path: Path
    records: list[JournalRecord]


class Journal:
    """Append-only, fsync'd, bounded segments under one directory; see the module docstring."""

    def __init__(self, directory: Path, max_bytes: int, max_age_s: float) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dir = directory
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._lock = gevent.lock.RLock()
        self._segments = sorted(directory.glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}"),
                                key=_segment_number)
        self._next = (_segment_number(self._segments[-1]) + 1) if self._segments else 1
        self._active: Path | None = None  # a previous process's last segment may end torn
        self._bytes = sum(path.stat().st_size for path in self._segments)
        self._oldest = self._first_received_at()

    @property
    def directory(self) -> Path:
        """Where the segments are."""
        return self._dir

    def pending(self) -> bool:
        """Whether records wait to be replayed (then new alerts queue behind them)."""
        return bool(self._segments)

    def size_bytes(self) -> int:
        """Bytes held by every segment."""
        return self._bytes

    def append(self, record: JournalRecord) -> None:
        """Write one record durably (write, flush, fsync); JournalRefused when it cannot."""
        line = record.line()
        with self._lock:
            if self._bytes + len(line) > self._max_bytes:
                raise JournalRefused(f"journal full ({self._bytes} bytes; JOURNAL_MAX_BYTES="
                                     f"{self._max_bytes})")
            if self._oldest is not None and record.received_at - self._oldest > self._max_age_s:
                raise JournalRefused("the outage outlasts the journal (its oldest alert is older"
                                     f" than JOURNAL_MAX_AGE_S={self._max_age_s:g})")
            created = self._active is None
            path = self._active or self._dir / (
                f"{_SEGMENT_PREFIX}{self._next:010d}{_SEGMENT_SUFFIX}")
            try:
                _append_synced(path, line, new_file=created)
            except OSError as exc:
                raise JournalRefused(f"journal not writable: {type(exc).__name__}"
                                     f" ({exc.strerror})") from None
            if created:
                self._active = path
                self._segments.append(path)
                self._next += 1
            self._bytes += len(line)
            if self._oldest is None:
                self._oldest = record.received_at

    def seal(self) -> list[Segment]:
        """Close the segment being appended to and return every segment to replay, oldest
        first; alerts appended from now on go to a new segment (and the next replay)."""
        with self._lock:
            self._active = None
            paths = list(self._segments)
        return [Segment(path, _read_records(path)) for path in paths]

    def remove(self, segment: Segment) -> None:
        """Delete a segment whose records are all committed."""
        with self._lock:
            size = segment.path.stat().st_size
            segment.path.unlink()
            _fsync_directory(self._dir)
            self._segments.remove(segment.path)
            self._bytes -= size
            self._oldest = self._first_received_at()

    def _first_received_at(self) -> float | None:
        for path in self._segments:
            records = _read_records(path)
            if records:
                return records[0].received_at
        return None


def _segment_number(path: Path) -> int:
    return int(path.name[len(_SEGMENT_PREFIX):-len(_SEGMENT_SUFFIX)])


def _append_synced(path: Path, line: bytes, new_file: bool) -> None:
    """Append `line` and fsync it; a failed write is cut off again so no torn line remains."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, before)
            except OSError:
                log.error("a torn journal record could not be cut off; replay skips it")
            raise
    finally:
        os.close(fd)
    if new_file:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a file's creation or removal durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_records(path: Path) -> list[JournalRecord]:
    """The records of one segment; a line that does not parse (torn by a crash while it was
    written: it was never acknowledged) is skipped with a log line naming the segment."""
    records: list[JournalRecord] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            records.append(JournalRecord.from_line(line))
        except (ValueError, KeyError, TypeError):
            log.error("journal %s line %d is not a record: skipped", path.name, number)
    return records


# --- replay ---------------------------------------------------------------------------------


@dataclass
class Replayed:
    """What one replay did with the records it found."""

    committed: int = 0  # accepted signals, now waiting for their bots
    expired: int = 0
    duplicates: int = 0
    rejected: int = 0

    @property
    def total(self) -> int:
        """Records handled."""
        return self.committed + self.expired + self.duplicates + self.rejected


def replay(db: Database, journal: Journal, stale_s: float,
           clock: Callable[[], float] = time.time) -> Replayed:
    """Commit every journaled record in arrival order, deleting each segment once it is.

    Raises what the database raised when it is unreachable again: the segments left are
    replayed next time, their committed records found by id/hash.
    """
    done = Replayed()
    for segment in journal.seal():
        bot_ids = sorted({record.bot_id for record in segment.records})
        hashes = {row["id"]: row["webhook_secret_hash"] for row in db.fetchall(
            "SELECT id, webhook_secret_hash FROM trading_bots WHERE id = ANY(%s)", (bot_ids,))}
        for record in segment.records:
            _replay_one(db, record, hashes, stale_s, clock(), done)
        journal.remove(segment)
    return done


def _replay_one(db: Database, record: JournalRecord, hashes: dict[str, str | None],
                stale_s: float, now: float, done: Replayed) -> None:
    context = {"signal_id": record.signal_id, "bot_id": record.bot_id}
    if record.bot_id not in hashes:  # bots are never deleted: a record naming none is junk
        log.error("journaled alert names no bot: dropped", extra=context)
        return
    settled: tuple[str, str] | None = None
    primary, duplicates = record.primary_hash, record.duplicate_hashes
    age = now - record.received_at
    if secret_fingerprint(hashes[record.bot_id]) != record.secret_fingerprint:
        settled = ("rejected", "the bot's webhook secret was rotated before this alert, "
                               "journaled during a database outage, was replayed")
        primary, duplicates = f"rejected:{record.signal_id}", ()
    elif age > stale_s and not never_stale(record.parsed):
        settled = ("expired", f"journaled during a database outage; {age:.0f} s old when the"
                              f" database answered again (SIGNAL_STALE_S={stale_s:g})")
    try:
        recorded = record_signal(db, record.bot_id, primary, duplicates, record.source,
                                 record.raw_body, record.parsed, signal_id=record.signal_id,
                                 received_at=record.received_at, settled=settled)
    except DATABASE_UNREACHABLE:
        raise
    except psycopg2.Error as exc:  # one record the database refuses must not block the rest
        log.error("journaled alert could not be committed: %s", type(exc).__name__,
                  extra=context)
        record_rejection(db, record.bot_id, record.source,
                         f"journaled alert could not be committed: {type(exc).__name__}",
                         record.raw_body)
        done.rejected += 1
        return
    if recorded.duplicate and recorded.signal_id != record.signal_id:
        done.duplicates += 1
    elif settled is None:
        done.committed += 1
    else:
        log.warning("journaled alert %s", settled[0], extra=context)
        if settled[0] == "expired":
            done.expired += 1
        else:
            done.rejected += 1


@dataclass
class OutageIntake:
    """What lets the webhook accept alerts while the database is unreachable: the journal, the
    secret cache, and (embedded server only) a way to start a dead server again."""

    journal: Journal
    secrets: SecretCache
    revive_server: Callable[[], bool] | None = None
