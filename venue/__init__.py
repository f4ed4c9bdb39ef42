"""Venue layer: Drift-family wire formats (Swift messages, Solana RPC, program instructions).

Everything here is plain, synchronous library code with no threads of its own, so that the
actors that own venue state (swift_gateway, legacy_executor, health_monitor) can call it from a
greenlet. Venue-specific values never appear as constants in callers: they come from a
:class:`venue.profiles.VenueProfile`.
"""
