"""The alert journal on disk and its replay into PostgreSQL; the webhook secret cache."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from storage.bots import set_webhook_secret_hash
from storage.database import Database
from storage.journal import Journal, JournalRecord, JournalRefused, replay
from storage.secret_cache import SecretCache, secret_fingerprint
from storage.signals import signal_story
from tests.storage.test_signals import make_bot

MiB = 1024 * 1024
STALE_S = 300.0


def record(bot_id: str, n: int, received_at: float | None = None, kind: str = "open",
           stored_hash: str | None = None) -> JournalRecord:
    return JournalRecord(str(uuid.uuid4()), bot_id, f"hash-{bot_id}-{n}", (f"prev-{n}",),
                         "webhook", f'{{"action": "buy", "n": {n}}}', {"kind": kind, "n": n},
                         time.time() if received_at is None else received_at,
                         secret_fingerprint(stored_hash))


def rows(db: Database, bot_id: str) -> list[dict]:
    return db.fetchall("SELECT id, status, status_reason, extract(epoch FROM received_at) AS at"
                       " FROM webhook_signals WHERE trading_bot_id = %s ORDER BY seq", (bot_id,))


def test_records_are_on_disk_when_append_returns_and_survive_a_reopen(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MiB, 3600)
    written = [record("b", n) for n in range(3)]
    for r in written:
        journal.append(r)
    reopened = Journal(tmp_path, MiB, 3600)  # a new process on the same STATE_DIR
    assert reopened.pending()
    assert [r for segment in reopened.seal() for r in segment.records] == written
    assert reopened.size_bytes() == sum(len(r.line()) for r in written)


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MiB, 3600)
    kept = record("b", 1)
    journal.append(kept)
    [segment] = journal.seal()
    with segment.path.open("ab") as handle:  # a crash in the middle of a write
        handle.write(record("b", 2).line()[:40])
    assert [r for s in Journal(tmp_path, MiB, 3600).seal() for r in s.records] == [kept]


def test_the_journal_is_bounded_by_bytes(tmp_path: Path) -> None:
    one = len(record("b", 0).line())
    journal = Journal(tmp_path, 3 * one + one // 2, 3600)
    for n in range(3):
        journal.append(record("b", n))
    with pytest.raises(JournalRefused, match="JOURNAL_MAX_BYTES"):
        journal.append(record("b", 3))
    assert len(journal.seal()[0].records) == 3


def test_the_journal_is_bounded_by_the_age_of_its_oldest_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MiB, 60)
    journal.append(record("b", 0, received_at=1000.0))
    journal.append(record("b", 1, received_at=1059.0))
    with pytest.raises(JournalRefused, match="JOURNAL_MAX_AGE_S"):
        journal.append(record("b", 2, received_at=1061.0))
    for segment in journal.seal():  # replayed: the bound starts again from the next record
        journal.remove(segment)
    journal.append(record("b", 3, received_at=5000.0))


def test_an_unwritable_journal_refuses(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", MiB, 3600)
    shutil.rmtree(tmp_path / "j")
    (tmp_path / "j").write_text("not a directory")
    with pytest.raises(JournalRefused, match="not writable"):
        journal.append(record("b", 0))


def test_replay_commits_in_arrival_order_with_the_intake_ids_and_times(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    journal = Journal(tmp_path, MiB, 3600)
    now = time.time()
    written = [record(bot, n, received_at=now - 10 + n) for n in range(4)]
    for r in written:
        journal.append(r)
    done = replay(db, journal, STALE_S)
    assert (done.committed, done.total) == (4, 4)
    stored = rows(db, bot)
    assert [r["id"] for r in stored] == [r.signal_id for r in written]
    assert [r["status"] for r in stored] == ["accepted"] * 4
    assert [float(r["at"]) for r in stored] == pytest.approx([r.received_at for r in written])
    assert not journal.pending() and not list(tmp_path.iterdir())


def test_a_replay_interrupted_before_the_segment_was_deleted_doubles_nothing(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    journal = Journal(tmp_path, MiB, 3600)
    for n in range(3):
        journal.append(record(bot, n))
    [segment] = journal.seal()
    backup = tmp_path.parent / "segment-backup"
    shutil.copy(segment.path, backup)
    replay(db, journal, STALE_S)
    shutil.copy(backup, segment.path)  # as if the process died after the commits
    again = replay(db, Journal(tmp_path, MiB, 3600), STALE_S)
    assert again.total == 3 and again.duplicates == 0
    assert len(rows(db, bot)) == 3


def test_replay_deduplicates_against_signals_already_committed(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    journal = Journal(tmp_path, MiB, 3600)
    first, redelivered = record(bot, 1), record(bot, 1)  # same bytes, two deliveries
    journal.append(first)
    journal.append(redelivered)
    done = replay(db, journal, STALE_S)
    assert (done.committed, done.duplicates) == (1, 1)
    assert [r["id"] for r in rows(db, bot)] == [first.signal_id]


def test_a_record_older_than_the_staleness_setting_is_recorded_expired_and_shown(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    journal = Journal(tmp_path, MiB, 3600)
    old_open = record(bot, 1, received_at=time.time() - STALE_S - 60)
    old_close = record(bot, 2, received_at=time.time() - STALE_S - 60, kind="close")
    journal.append(old_open)
    journal.append(old_close)
    done = replay(db, journal, STALE_S)
    assert (done.expired, done.committed) == (1, 1)  # closes never go stale
    story = signal_story(db, old_open.signal_id)
    assert story is not None and story["status"] == "expired"
    assert "SIGNAL_STALE_S=300" in story["status_reason"] and story["processed_at"]
    assert [r["status"] for r in rows(db, bot)] == ["expired", "accepted"]


def test_an_alert_accepted_under_a_rotated_secret_is_recorded_rejected(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    set_webhook_secret_hash(db, bot, "v1.k1." + "a" * 64)
    journal = Journal(tmp_path, MiB, 3600)
    stale_secret = record(bot, 1, stored_hash="v1.k1." + "b" * 64)
    current_secret = record(bot, 2, stored_hash="v1.k1." + "a" * 64)
    journal.append(stale_secret)
    journal.append(current_secret)
    done = replay(db, journal, STALE_S)
    assert (done.rejected, done.committed) == (1, 1)
    story = signal_story(db, stale_secret.signal_id)
    assert story is not None and story["status"] == "rejected"
    assert "rotated" in story["status_reason"]


def test_alerts_journaled_during_a_replay_wait_for_the_next_one(
        db: Database, tmp_path: Path) -> None:
    bot = make_bot(db)
    journal = Journal(tmp_path, MiB, 3600)
    journal.append(record(bot, 1))
    sealed = journal.seal()
    later = record(bot, 2)
    journal.append(later)  # goes to a new segment, behind the sealed one
    for segment in sealed:
        journal.remove(segment)
    assert journal.pending()
    assert [r for s in journal.seal() for r in s.records] == [later]


def test_the_secret_cache_follows_rotations_on_refresh(db: Database) -> None:
    bot = make_bot(db)
    set_webhook_secret_hash(db, bot, "v1.k1." + "a" * 64)
    cache = SecretCache()
    assert not cache.knows(bot)
    assert cache.refresh(db) == 1 and cache.stored_hash(bot) == "v1.k1." + "a" * 64
    set_webhook_secret_hash(db, bot, "v1.k1." + "c" * 64)  # `bot rotate-secret`, elsewhere
    cache.refresh(db)
    assert cache.stored_hash(bot) == "v1.k1." + "c" * 64
    cache.remember("other", None)
    cache.refresh(db)  # replaced whole: what the database no longer says is forgotten
    assert not cache.knows("other")
