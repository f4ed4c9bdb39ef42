"""Storage: PostgreSQL only, embedded (pgserver) by default or a server from DATABASE_URL."""
