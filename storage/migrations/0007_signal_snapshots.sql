-- The market snapshot a signal is sized, priced and signed against (slot, chain time, oracle,
-- size rules). Taken once when the source signal is claimed and copied onto every subscriber
-- copy, so every copy of one alert trades against the same slot and oracle, in this process or
-- in another one later.
ALTER TABLE webhook_signals ADD COLUMN snapshot JSONB;

-- The oracle price of that snapshot, recorded on each trade as the reference its fill is judged by.
ALTER TABLE bot_trades ADD COLUMN reference_price NUMERIC(20, 6);

-- A subscriber may refuse copies whose market moved more than this from the source's snapshot
-- (basis points; NULL: no limit).
ALTER TABLE subscriptions ADD COLUMN max_price_deviation_bps INTEGER
  CHECK (max_price_deviation_bps IS NULL OR max_price_deviation_bps > 0);
