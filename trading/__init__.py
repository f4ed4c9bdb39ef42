"""The trading rules as plain functions on plain data: alert parsing, signal hashing, sizing."""
