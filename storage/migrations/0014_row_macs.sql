-- Authenticated money rows (issue 13, point 5). Each MAC is "v1.<server key id>.<64 hex>",
-- an HMAC under the policy key of that server key with its own domain tag (security.row_macs).
--   trading_bots.binding_mac       wallet, market, market_index, sub-account, leverage,
--                                  max position and the published bot a subscriber copies
--   published_bots.terms_mac       creator wallet and profit-share percent
--   pending_profit_shares.share_mac trade, subscriber bot and wallet, creator, amount, PnL, percent
--   trade_retry_queue.job_mac      bot, wallet, market, side, size, reduce-only, sub-account
ALTER TABLE trading_bots ADD COLUMN binding_mac TEXT;
ALTER TABLE published_bots ADD COLUMN terms_mac TEXT;
ALTER TABLE pending_profit_shares ADD COLUMN share_mac TEXT;
ALTER TABLE trade_retry_queue ADD COLUMN job_mac TEXT;

-- A payment once made is kept here, out of reach of the IOU's status: a share set back to
-- 'pending' (or a new share for the same trade) is never paid again.
CREATE TABLE profit_share_payments (
  share_id VARCHAR(255) PRIMARY KEY,
  trade_id VARCHAR(255) UNIQUE,
  signature TEXT NOT NULL,
  paid_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO profit_share_payments (share_id, trade_id, signature, paid_at)
  SELECT id, trade_id, paid_tx_signature, COALESCE(paid_at, updated_at)
  FROM pending_profit_shares WHERE status = 'paid' AND paid_tx_signature IS NOT NULL
  ON CONFLICT DO NOTHING;
CREATE FUNCTION profit_share_payments_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'profit_share_payments is append-only';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER profit_share_payments_no_change BEFORE UPDATE OR DELETE
  ON profit_share_payments FOR EACH ROW EXECUTE FUNCTION profit_share_payments_append_only();

-- The one-time MAC backfill of rows written before this migration: 'pending' until the daemon
-- has MAC'd them (security.row_macs.ensure_backfilled), then 'done'; after that a NULL MAC is
-- refused. The daemon also keeps a marker file in STATE_DIR, so setting this row back to
-- 'pending' by SQL does not make that daemon MAC rows again.
CREATE TABLE row_mac_backfill (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  state VARCHAR(10) NOT NULL CHECK (state IN ('pending', 'done')),
  done_at TIMESTAMPTZ
);
INSERT INTO row_mac_backfill (id, state) VALUES (1, 'pending');
