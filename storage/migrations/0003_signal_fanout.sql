-- Fan-out: each subscriber's copy of a signal is its own row (own order, own outcome), linked to
-- the source signal; its hash is derived from the source's, so a copy can never be made twice.
ALTER TABLE webhook_signals ADD COLUMN parent_signal_id VARCHAR(255) REFERENCES webhook_signals(id);
ALTER TABLE webhook_signals ADD COLUMN status_reason TEXT;
CREATE INDEX idx_webhook_signals_parent ON webhook_signals(parent_signal_id);
-- Arrival order: now() is the transaction's start time and ties between concurrent alerts, so
-- a bot's signals are ordered by an insertion sequence instead.
ALTER TABLE webhook_signals ADD COLUMN seq BIGSERIAL;
CREATE INDEX idx_webhook_signals_pending ON webhook_signals(trading_bot_id, seq)
  WHERE status = 'accepted';
