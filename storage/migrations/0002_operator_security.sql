-- Operator CLI and trade guard (issue 4): the id that ties flatten orders to one wallet stop
-- (the global stop keeps its id in runtime_flags.value), and the record of every refused trade.

ALTER TABLE wallets ADD COLUMN emergency_stop_id VARCHAR(64);

-- One row per order the pre-trade gate refused: emergency stop, policy HMAC mismatch, ...
-- `reason` is the fixed label that is also the policy_refusals_total{reason} metric label.
CREATE TABLE trade_refusals (
  id BIGSERIAL PRIMARY KEY,
  trading_bot_id VARCHAR(255) REFERENCES trading_bots(id),
  wallet_address VARCHAR(64),
  reason VARCHAR(64) NOT NULL,
  origin VARCHAR(20) NOT NULL,               -- webhook | manual | subscriber | retry | flatten
  kind VARCHAR(10) NOT NULL,                 -- open | close
  reduce_only BOOLEAN NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_trade_refusals_bot ON trade_refusals(trading_bot_id, created_at);
CREATE INDEX idx_trade_refusals_reason ON trade_refusals(reason, created_at);
