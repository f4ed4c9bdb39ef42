-- Security V3 for real (issue 13 points 1-3): execution grants.
-- trading_bots.umk_encrypted_for_bot now holds the bot's UMK sealed *with its expiry* under the
-- server key (bound to bot and wallet); execution_expires_at mirrors that expiry for queries and
-- must agree with it. execution_grant_mac is the owner's key_execution MAC over (bot, wallet,
-- expiry), written while the owner's signature is present. granted_at / revoked_at tell the
-- operator when a grant was last given or withdrawn (`bot revoke` erases the sealed UMK).
ALTER TABLE trading_bots ADD COLUMN execution_grant_mac TEXT;
ALTER TABLE trading_bots ADD COLUMN execution_granted_at TIMESTAMPTZ;
ALTER TABLE trading_bots ADD COLUMN execution_revoked_at TIMESTAMPTZ;
-- grants that lapse with a position open are found by expiry
CREATE INDEX idx_trading_bots_grant_expiry ON trading_bots (execution_expires_at)
  WHERE umk_encrypted_for_bot IS NOT NULL;
