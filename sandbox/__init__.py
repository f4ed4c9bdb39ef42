"""Local exchange sandbox: Swift HTTP API and Solana JSON-RPC of a Drift-family venue, on loopback.

A product feature (paper trading, demos) and the ground for end-to-end tests and benchmarks.
Start it with ``quantumvault sandbox`` (``sandbox.cli.main``) or in-process with
``sandbox.server.SandboxServer``. See ``sandbox/README.md`` for endpoints and fault knobs.
"""
