"""End-to-end tests of the local exchange sandbox over real HTTP on 127.0.0.1."""
