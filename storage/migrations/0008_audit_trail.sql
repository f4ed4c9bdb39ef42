-- The Swift audit trail, complete (issue 12 point 5).

-- Appendix E's VARCHAR(20) is shorter than codes of its own taxonomy (insufficient_collateral
-- has 23 characters), so such a row failed to insert and the rejection was missing from the
-- log. 64 holds every code venue/swift_errors.py and the gateway produce, with room to spare.
ALTER TABLE swift_order_logs ALTER COLUMN error_code TYPE VARCHAR(64);

-- swift_status takes the plan's values only: submitted, filled, failed, fallback. Rows written
-- before this carried the gateway's own states; map them (an unknown fate stays submitted).
UPDATE bot_trades SET swift_status = CASE
    WHEN swift_status IN ('filled', 'partial') THEN 'filled'
    WHEN swift_status = 'unknown' THEN 'submitted'
    WHEN execution_method = 'legacy' THEN 'fallback'
    ELSE 'failed' END
  WHERE swift_status IS NOT NULL
    AND swift_status NOT IN ('submitted', 'filled', 'failed', 'fallback');

-- Retry jobs: the Swift order they retry, and a close's entry price, from their original trade.
UPDATE trade_retry_queue q SET swift_order_id = t.swift_order_id
  FROM bot_trades t
  WHERE t.id = q.original_trade_id AND q.swift_order_id IS NULL AND t.swift_order_id IS NOT NULL;
UPDATE trade_retry_queue q
  SET entry_price = round(abs(t.entry_quote_before) * 1000 / abs(t.position_before_base), 6)
  FROM bot_trades t
  WHERE t.id = q.original_trade_id AND q.reduce_only AND q.entry_price IS NULL
    AND t.position_before_base <> 0 AND t.entry_quote_before IS NOT NULL;
