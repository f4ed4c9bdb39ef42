-- The position (base, 1e9) read right before a retry attempt was sent: if the attempt's fate is
-- unknown, the next claim compares the venue's position with it before sending anything again.
ALTER TABLE trade_retry_queue ADD COLUMN position_before_base NUMERIC(40, 0);

-- The position when a trade row was opened (before its order was sent): a trade left pending by
-- a crash is reconciled against it after the restart.
ALTER TABLE bot_trades ADD COLUMN position_before_base NUMERIC(40, 0);
ALTER TABLE bot_trades ADD COLUMN entry_quote_before NUMERIC(40, 0);  -- quote_entry_amount then
