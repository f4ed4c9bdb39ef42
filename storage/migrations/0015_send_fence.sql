-- Fenced sends (issue 14 point 2): an on-chain order is marked on its trade, in the statement that
-- checks the sender still holds the bot's lease at its epoch, with its signature (tx_signature)
-- and the last block height at which it can land, so whoever reconciles the trade later can tell
-- a transaction that may still land from one that never can.
ALTER TABLE bot_trades ADD COLUMN tx_last_valid_block_height BIGINT;
