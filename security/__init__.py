"""Security V3 crypto core: key hierarchy, sealed envelopes, server keys, policy, inbound auth.

Every module here is pure (plain data in, plain data out, no database, no network) so that
storage and the operator CLI can wire it in without the crypto depending on either.

Where things are:
    key_hierarchy   wallet signature -> UMK -> key_privkey / key_mnemonic / key_execution
    envelope        AES-256-GCM versioned envelope bound to (wallet, purpose)
    agent_keys      agent private key and mnemonic sealed under the UMK sub-keys
    execution       umk_encrypted_for_bot, execution authorization (allowed/disabled/expired)
    server_key      server key loading (file / systemd credential), key ring, rotation
    policy          policy HMAC over (bot, market, leverage, max_position_size)
    emergency_stop  global / wallet stop, stop-and-flatten decisions
    gate            the one pre-trade check every path calls (stop, then policy)
    webhook_auth    webhook secrets, admin token, TradingView IP allowlist, body size limit
    redaction       logging filter that scrubs registered secrets and key-like text
    errors          typed refusals (fixed messages, no key material)
"""
