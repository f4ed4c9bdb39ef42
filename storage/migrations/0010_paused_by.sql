-- Who paused a bot (issue 12 point 7). 'system': the daemon paused it (retries exhausted, an open
-- it cannot afford); it still runs reduce-only closes of its own position, so a stranded close can
-- end the risk. 'operator': `bot pause`; it stops everything. NULL on an active bot; an inactive
-- bot with NULL (written by hand) is treated as an operator's pause: nothing runs.
ALTER TABLE trading_bots ADD COLUMN paused_by VARCHAR(16)
  CHECK (paused_by IS NULL OR paused_by IN ('system', 'operator'));

-- Bots paused before this column: `bot pause` always stored "operator" or "operator: ...";
-- every other reason was written by the daemon. No reason at all: a pause by hand, the operator's.
UPDATE trading_bots SET paused_by = CASE WHEN paused_reason IS NULL
                                           OR paused_reason LIKE 'operator%' THEN 'operator'
                                         ELSE 'system' END
 WHERE NOT is_active;
