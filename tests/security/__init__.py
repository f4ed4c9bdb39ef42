"""Tests of the security package (pure crypto core)."""
