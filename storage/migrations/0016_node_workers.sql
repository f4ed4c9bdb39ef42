-- Several worker processes share the bots of one database. Each live worker keeps a row here
-- (renewed with its bot leases), so every worker can compute its fair share of the bots; a
-- row whose `seen_until` passed is a worker that died or stopped.
CREATE TABLE node_workers (
  holder TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  seen_until TIMESTAMPTZ NOT NULL
);

-- Duties that must run once for the whole database (venue health probes, the profit-share IOU
-- timer) run where their lease is held; a holder that dies loses it when it runs out.
CREATE TABLE duty_leases (
  duty TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  epoch BIGINT NOT NULL DEFAULT 1,
  expires_at TIMESTAMPTZ NOT NULL
);

-- What the holder of the health-probe duty last saw of the venue, read by every other process
-- instead of probing the venue itself.
CREATE TABLE venue_health (
  probe TEXT PRIMARY KEY,
  ok BOOLEAN NOT NULL,
  detail TEXT,
  probed_by TEXT NOT NULL,
  probed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
