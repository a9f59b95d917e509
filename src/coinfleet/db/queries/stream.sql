-- name: stream_predictions --
-- The predictions one stored statement wrote: ids $1..$2 of the models $3, at most $4 rows.
SELECT p.id, m.name AS model, p.mint, p.metric_ts, p.probability, p.tag, p.created_at
FROM coinfleet_predictions AS p
JOIN coinfleet_models AS m ON m.id = p.model_id
WHERE p.id BETWEEN $1 AND $2 AND p.model_id = ANY($3::int[])
ORDER BY p.id
LIMIT $4

-- name: stream_alerts --
-- The alerts one statement queued: ids $1..$2 of the models $3, at most $4 rows.
SELECT a.id, m.name AS model, a.mint, a.metric_ts, a.tag, a.state, a.prediction_id, a.created_at
FROM coinfleet_alerts AS a
JOIN coinfleet_models AS m ON m.id = a.model_id
WHERE a.id BETWEEN $1 AND $2 AND a.model_id = ANY($3::int[])
ORDER BY a.id
LIMIT $4

-- name: stream_model --
-- A model's name and state after a change.
SELECT id, name, version, status, status_reason, updated_at FROM coinfleet_models WHERE id = $1

