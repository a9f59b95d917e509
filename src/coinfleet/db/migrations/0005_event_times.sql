-- When each event was inserted (≈ when its metric row committed, for an ingester in autocommit):
-- the start of the latency a lane reports (metric commit → prediction commit).
ALTER TABLE coinfleet_events ADD COLUMN inserted_at timestamptz NOT NULL DEFAULT clock_timestamp();
