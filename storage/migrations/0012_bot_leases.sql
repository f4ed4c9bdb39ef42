-- One holder per bot (issue 11 point 4): the daemon that holds a bot's lease is the only one that
-- claims its signals and its retry jobs. A lease lives until `expires_at` and is renewed by its
-- holder; `epoch` grows each time the lease changes hands, so work can be fenced by it. A row
-- (unlike a session advisory lock) survives a PostgreSQL restart.
CREATE TABLE bot_leases (
  bot_id VARCHAR(255) PRIMARY KEY REFERENCES trading_bots(id) ON DELETE CASCADE,
  holder TEXT NOT NULL,
  epoch BIGINT NOT NULL DEFAULT 1,
  acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX bot_leases_holder ON bot_leases (holder);
