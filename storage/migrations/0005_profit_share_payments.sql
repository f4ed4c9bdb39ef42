-- Profit-share payments: a share is claimed with a lease (two daemons never pay one share at
-- once), and the payment's signature and the last block height at which it can land are
-- recorded BEFORE it is sent, so the next attempt after a crash or a lost answer first asks
-- the chain what became of it (landed -> paid; failed or expired -> safe to send anew).
-- status: pending | sending (claimed by a worker) | paid | void
ALTER TABLE pending_profit_shares ADD COLUMN claimed_by VARCHAR(64);
ALTER TABLE pending_profit_shares ADD COLUMN claimed_until TIMESTAMPTZ;
ALTER TABLE pending_profit_shares ADD COLUMN inflight_signature TEXT;
ALTER TABLE pending_profit_shares ADD COLUMN inflight_last_valid_block_height BIGINT;
ALTER TABLE pending_profit_shares ADD COLUMN paid_at TIMESTAMPTZ;
ALTER TABLE pending_profit_shares ADD CONSTRAINT pending_profit_shares_status_check
  CHECK (status IN ('pending', 'sending', 'paid', 'void'));
CREATE INDEX idx_pending_profit_shares_sending ON pending_profit_shares(claimed_until)
  WHERE status = 'sending';
