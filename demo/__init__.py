"""`quantumvault demo`: a guided run of the whole product against the local sandbox."""
