-- Core schema: the seed plan's Appendix E (Swift columns, retry queue, swift_order_logs) on top of
-- the tables the four execution paths need. Appendix E's columns keep its exact types; tables it
-- does not describe use TIMESTAMPTZ.

CREATE TABLE wallets (
  address VARCHAR(64) PRIMARY KEY,
  agent_public_key VARCHAR(64) NOT NULL UNIQUE,
  agent_private_key_encrypted TEXT,          -- legacy server-key envelope (subscriber path)
  agent_private_key_encrypted_v3 TEXT,       -- sealed under the user's key_privkey
  agent_mnemonic_encrypted_v3 TEXT,          -- sealed under the user's key_mnemonic
  emergency_stop_triggered BOOLEAN NOT NULL DEFAULT false,
  emergency_stop_mode VARCHAR(20),           -- 'stop' | 'flatten'
  emergency_stop_reason TEXT,
  emergency_stop_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE runtime_flags (
  key VARCHAR(64) PRIMARY KEY,               -- e.g. 'global_emergency_stop'
  value JSONB NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE trading_bots (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  wallet_address VARCHAR(64) NOT NULL REFERENCES wallets(address),
  name TEXT NOT NULL,
  market VARCHAR(32) NOT NULL,
  market_index INTEGER NOT NULL,
  leverage NUMERIC(10, 2) NOT NULL DEFAULT 1 CHECK (leverage > 0),
  max_position_size NUMERIC(20, 6) NOT NULL CHECK (max_position_size > 0),
  drift_subaccount_id INTEGER NOT NULL DEFAULT 0,
  is_active BOOLEAN NOT NULL DEFAULT true,
  paused_reason TEXT,
  paused_at TIMESTAMPTZ,
  webhook_secret_hash TEXT,
  policy_hmac TEXT,
  execution_active BOOLEAN NOT NULL DEFAULT false,
  execution_expires_at TIMESTAMPTZ,
  umk_encrypted_for_bot TEXT,
  source_published_bot_id VARCHAR(255),      -- set on subscriber bots
  swift_enabled BOOLEAN DEFAULT true NOT NULL,
  swift_fallback_enabled BOOLEAN DEFAULT true NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_trading_bots_wallet ON trading_bots(wallet_address);

CREATE TABLE published_bots (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  trading_bot_id VARCHAR(255) NOT NULL UNIQUE REFERENCES trading_bots(id),
  creator_wallet_address VARCHAR(64) NOT NULL REFERENCES wallets(address),
  profit_share_percent NUMERIC(5, 2) NOT NULL DEFAULT 0
    CHECK (profit_share_percent >= 0 AND profit_share_percent <= 100),
  is_active BOOLEAN NOT NULL DEFAULT true,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE trading_bots ADD CONSTRAINT fk_trading_bots_source_published
  FOREIGN KEY (source_published_bot_id) REFERENCES published_bots(id);

CREATE TABLE subscriptions (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  published_bot_id VARCHAR(255) NOT NULL REFERENCES published_bots(id),
  subscriber_bot_id VARCHAR(255) NOT NULL UNIQUE REFERENCES trading_bots(id),
  subscriber_wallet_address VARCHAR(64) NOT NULL REFERENCES wallets(address),
  capital_usd NUMERIC(20, 6) NOT NULL CHECK (capital_usd > 0),
  is_active BOOLEAN NOT NULL DEFAULT true,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_subscriptions_published_active ON subscriptions(published_bot_id, is_active);

CREATE TABLE webhook_signals (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  trading_bot_id VARCHAR(255) NOT NULL REFERENCES trading_bots(id),
  signal_hash VARCHAR(128) NOT NULL UNIQUE,
  source VARCHAR(20) NOT NULL DEFAULT 'webhook',   -- 'webhook' | 'manual'
  raw_body TEXT,
  parsed JSONB,
  status VARCHAR(20) NOT NULL DEFAULT 'accepted',  -- accepted | processing | done | failed | rejected
  outcome JSONB,
  error TEXT,
  received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  processed_at TIMESTAMPTZ
);
CREATE INDEX idx_webhook_signals_bot_status ON webhook_signals(trading_bot_id, status);

CREATE TABLE bot_trades (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  trading_bot_id VARCHAR(255) NOT NULL REFERENCES trading_bots(id),
  signal_id VARCHAR(255) REFERENCES webhook_signals(id),
  wallet_address VARCHAR(64) NOT NULL,
  market VARCHAR(32) NOT NULL,
  side VARCHAR(10) NOT NULL,                 -- 'long' | 'short'
  size NUMERIC(30, 9) NOT NULL,              -- requested base amount
  filled_size NUMERIC(30, 9),
  price NUMERIC(30, 6),                      -- average fill price
  reduce_only BOOLEAN NOT NULL DEFAULT false,
  status VARCHAR(20) NOT NULL,               -- pending | completed | partial | failed
  tx_signature TEXT,
  error_message TEXT,
  -- Appendix E: Swift columns
  execution_method VARCHAR(20) DEFAULT 'legacy' NOT NULL,
  swift_order_id VARCHAR(64),
  swift_status VARCHAR(20),
  swift_submitted_at TIMESTAMP,
  swift_filled_at TIMESTAMP,
  auction_duration_ms INTEGER,
  keeper_pubkey TEXT,
  price_improvement DECIMAL(10, 4),
  fallback_reason TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_bot_trades_bot ON bot_trades(trading_bot_id, created_at);
CREATE INDEX idx_bot_trades_signal ON bot_trades(signal_id);

CREATE TABLE trade_retry_queue (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  bot_id VARCHAR(255) NOT NULL REFERENCES trading_bots(id),
  signal_id VARCHAR(255) REFERENCES webhook_signals(id),
  wallet_address VARCHAR(64) NOT NULL,
  market VARCHAR(32) NOT NULL,
  side VARCHAR(10) NOT NULL,                 -- 'long' | 'short' | 'close'
  size NUMERIC(30, 9) NOT NULL,
  sub_account_id INTEGER NOT NULL DEFAULT 0,
  reduce_only BOOLEAN NOT NULL DEFAULT false,
  slippage_bps INTEGER NOT NULL DEFAULT 50,
  priority VARCHAR(10) NOT NULL CHECK (priority IN ('critical', 'normal')),
  status VARCHAR(20) NOT NULL DEFAULT 'pending',   -- pending | running | done | failed
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  cooldown_retries INTEGER NOT NULL DEFAULT 0,
  next_retry_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_error TEXT,
  original_trade_id VARCHAR(255) REFERENCES bot_trades(id),
  webhook_payload JSONB,
  entry_price NUMERIC(30, 6),
  -- Appendix E: Swift columns
  swift_order_id VARCHAR(64),
  original_execution_method VARCHAR(20) DEFAULT 'legacy',
  swift_attempts INTEGER DEFAULT 0,
  last_swift_error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_trade_retry_queue_due ON trade_retry_queue(status, next_retry_at);

-- Appendix E, verbatim in shape
CREATE TABLE swift_order_logs (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  trade_id VARCHAR(255) REFERENCES bot_trades(id) ON DELETE CASCADE,
  swift_order_id VARCHAR(64) NOT NULL,
  event_type VARCHAR(30) NOT NULL,           -- submitted | accepted | placed | filled | failed | expired
  timestamp TIMESTAMP DEFAULT NOW() NOT NULL,
  request_payload JSONB,
  response_payload JSONB,
  error_code VARCHAR(20),
  error_message TEXT,
  latency_ms INTEGER,
  created_at TIMESTAMP DEFAULT NOW() NOT NULL
);
CREATE INDEX idx_swift_order_logs_trade_id ON swift_order_logs(trade_id);
CREATE INDEX idx_swift_order_logs_swift_order_id ON swift_order_logs(swift_order_id);
CREATE INDEX idx_swift_order_logs_event_type ON swift_order_logs(event_type);

CREATE TABLE pending_profit_shares (
  id VARCHAR(255) PRIMARY KEY DEFAULT gen_random_uuid(),
  idempotency_key VARCHAR(255) NOT NULL UNIQUE,   -- one payment per closing trade
  subscriber_bot_id VARCHAR(255) NOT NULL REFERENCES trading_bots(id),
  published_bot_id VARCHAR(255) NOT NULL REFERENCES published_bots(id),
  trade_id VARCHAR(255) REFERENCES bot_trades(id),
  subscriber_wallet_address VARCHAR(64) NOT NULL,
  creator_wallet_address VARCHAR(64) NOT NULL,
  amount NUMERIC(30, 6) NOT NULL CHECK (amount > 0),
  realized_pnl NUMERIC(30, 6) NOT NULL,
  profit_share_percent NUMERIC(5, 2) NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'pending',  -- pending | paid | void
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL DEFAULT now() + interval '7 days',
  paid_tx_signature TEXT,
  void_reason TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_pending_profit_shares_due ON pending_profit_shares(status, next_attempt_at);
