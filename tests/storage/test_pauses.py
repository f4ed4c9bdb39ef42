"""The one pause statement: an operator's pause is never overwritten by a system pause."""

from __future__ import annotations

from typing import Any

import pytest

from storage.bot_controls import pause_bot, resume_bot
from storage.database import Database
from tests.storage.test_signals import make_bot


def _pause(db: Database, bot_id: str) -> dict[str, Any]:
    row = db.fetchone("SELECT is_active, paused_by, paused_reason FROM trading_bots"
                      " WHERE id = %s", (bot_id,))
    assert row is not None
    return row


def test_a_system_pause_leaves_an_operators_pause_and_its_reason(db: Database) -> None:
    bot = make_bot(db)
    assert pause_bot(db, bot, "operator: maintenance") is not None
    assert pause_bot(db, bot, "retries ran out", paused_by="system") is None
    assert _pause(db, bot) == {"is_active": False, "paused_by": "operator",
                               "paused_reason": "operator: maintenance"}


def test_an_operators_pause_takes_over_a_system_pause_once(db: Database) -> None:
    bot = make_bot(db)
    assert pause_bot(db, bot, "retries ran out", paused_by="system") is not None
    assert pause_bot(db, bot, "a second system reason", paused_by="system") is None
    assert _pause(db, bot)["paused_reason"] == "retries ran out"
    taken = pause_bot(db, bot, "operator: stop")
    assert taken is not None and taken["paused_by"] == "operator"
    assert pause_bot(db, bot, "operator: again") is None
    assert _pause(db, bot)["paused_reason"] == "operator: stop"


def test_resume_clears_either_pause(db: Database) -> None:
    bot = make_bot(db)
    assert resume_bot(db, bot) is None  # not paused
    pause_bot(db, bot, "retries ran out", paused_by="system")
    assert resume_bot(db, bot) is not None
    assert _pause(db, bot) == {"is_active": True, "paused_by": None, "paused_reason": None}
    with pytest.raises(ValueError, match="paused_by"):
        pause_bot(db, bot, "x", paused_by="cron")
