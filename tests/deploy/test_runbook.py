"""The runbook: its SQL runs against the real schema, its links land on headings, and it covers
rollback (global and per bot), swift_order_logs, draining the retry queue and crash drills."""

from __future__ import annotations

import re

import psycopg2
import pytest

from tests.deploy.artifacts import RUNBOOK, defined_metric_names, heading_anchors

TEXT = RUNBOOK.read_text()
SQL_BLOCKS = re.findall(r"```sql\n(.*?)```", TEXT, flags=re.S)


def test_runbook_has_the_sections_issue_7_asks_for() -> None:
    anchors = heading_anchors(TEXT)
    assert {"global-rollback", "per-bot-rollback", "reading-swift_order_logs",
            "draining-the-retry-queue", "crash-drills"} <= anchors
    # the global rollback is one command, no restart
    rollback = TEXT[TEXT.index("## Global rollback"):TEXT.index("## Per-bot rollback")]
    assert "qv flags set SWIFT_ENABLED false" in rollback
    assert "systemctl restart" not in rollback and "runtime_flag_changes" in rollback
    assert "UPDATE trading_bots SET swift_enabled = false" in TEXT
    assert "quantumvault bot swift BOT --off" in TEXT
    assert "journalctl -u quantumvault" in TEXT


def test_runbook_links_land_on_headings() -> None:
    anchors = heading_anchors(TEXT)
    links = re.findall(r"\]\(#([^)]+)\)", TEXT)
    assert links
    assert set(links) <= anchors, sorted(set(links) - anchors)


@pytest.mark.usefixtures("db")  # a migrated database at database_url
@pytest.mark.parametrize("sql", SQL_BLOCKS, ids=[f"sql{i}" for i in range(len(SQL_BLOCKS))])
def test_runbook_sql_runs_against_the_schema(database_url: str, sql: str) -> None:
    """Each query, placeholders ('BOT_ID', ...) as written, inside a rolled-back transaction."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)  # a wrong table or column raises here
            assert cur.statusmessage.split()[0] in ("SELECT", "UPDATE", "DELETE", "INSERT")
    finally:
        conn.rollback()
        conn.close()


def test_runbook_has_the_swift_order_logs_queries() -> None:
    assert len(SQL_BLOCKS) >= 8
    logs = [sql for sql in SQL_BLOCKS if "swift_order_logs" in sql]
    assert any("swift_order_id = 'SWIFT_ORDER_ID'" in sql and "ORDER BY" in sql for sql in logs)
    assert any("GROUP BY error_code" in sql and "interval '1 hour'" in sql for sql in logs)
    assert any("NOT EXISTS" in sql and "'filled'" in sql for sql in logs)


def test_metrics_the_runbook_names_exist() -> None:
    """`name{labels}` and `..._total` in backticks must be series the code defines."""
    named = set()
    for token in re.findall(r"`([^`\s]+)`", TEXT):
        match = re.fullmatch(r"([a-z_:][a-z0-9_:]*)(\{.*\})?", token)
        if match and (match[2] or match[1].endswith("_total")):
            named.add(match[1])
    assert len(named) >= 5
    defined = defined_metric_names()
    assert named <= defined, sorted(named - defined)
