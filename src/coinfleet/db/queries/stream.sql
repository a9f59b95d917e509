-- name: stream_watch --
-- Keep the stream triggers sending rows for hub $1 for $2 more seconds (and forget hubs gone an hour).
WITH gone AS (DELETE FROM coinfleet_stream_watch WHERE until < now() - interval '1 hour')
INSERT INTO coinfleet_stream_watch (hub, until) VALUES ($1, now() + make_interval(secs => $2))
ON CONFLICT (hub) DO UPDATE SET until = excluded.until

-- name: stream_unwatch --
-- Hub $1 has stopped: the triggers need not send rows for it.
DELETE FROM coinfleet_stream_watch WHERE hub = $1

-- name: stream_model --
-- A model's name and state after a change.
SELECT id, name, version, status, status_reason, updated_at FROM coinfleet_models WHERE id = $1
