-- Each bot trades on its own Drift sub-account (issue 12 point 1): two bots of one wallet never
-- share one, so a close of one never closes the other's position, and sizing, fill measurement
-- and profit shares read only the bot's own account. `bot create` / `bot subscribe` allocate the
-- next id and create it on the venue (operator_cli/subaccounts.py).
--
-- Bots created before this: the first bot of a wallet (oldest, then lowest id) keeps
-- sub-account 0; every later bot that shares an id with an older one is marked
-- drift_subaccount_shared and keeps trading where it did. A SQL migration cannot talk to the
-- venue, and renumbering here would strand a bot's open position on sub-account 0 (its closes
-- would go to an empty account), so the move itself is `quantumvault bot migrate-subaccounts`:
-- it creates and funds the new sub-account on the venue first and only then gives the bot its id
-- and clears the mark, refusing (with the reason in its report) while sub-account 0 holds a
-- position or open orders in the bot's market. The daemon warns at start while marks remain.
ALTER TABLE trading_bots ADD COLUMN drift_subaccount_shared BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE trading_bots ADD CONSTRAINT chk_trading_bots_drift_subaccount_id
  CHECK (drift_subaccount_id BETWEEN 0 AND 65535);  -- the program's u16

UPDATE trading_bots b SET drift_subaccount_shared = true
  FROM (SELECT id, row_number() OVER (PARTITION BY wallet_address, drift_subaccount_id
                                      ORDER BY created_at, id) AS n
          FROM trading_bots) o
 WHERE o.id = b.id AND o.n > 1;

CREATE UNIQUE INDEX uq_trading_bots_wallet_subaccount
  ON trading_bots (wallet_address, drift_subaccount_id) WHERE NOT drift_subaccount_shared;

-- What `bot migrate-subaccounts` did, one row per bot moved; never updated.
CREATE TABLE subaccount_moves (
  id BIGSERIAL PRIMARY KEY,
  bot_id VARCHAR(255) NOT NULL REFERENCES trading_bots(id),
  wallet_address VARCHAR(64) NOT NULL,
  from_subaccount_id INTEGER NOT NULL,
  to_subaccount_id INTEGER NOT NULL,
  funded_quote NUMERIC(20, 6) NOT NULL DEFAULT 0,
  tx_signatures TEXT[] NOT NULL DEFAULT '{}',
  moved_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_subaccount_moves_bot ON subaccount_moves(bot_id);
