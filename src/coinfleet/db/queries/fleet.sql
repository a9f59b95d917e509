-- name: prediction_keys --
-- Every stored prediction as (model name, coin, metric time): what the chaos benchmark compares.
SELECT m.name, p.mint, p.metric_ts FROM coinfleet_predictions AS p JOIN coinfleet_models AS m ON m.id = p.model_id

-- name: repeated_predictions --
-- How many (model, coin, metric time) are stored more than once.
SELECT count(*) FROM (
    SELECT 1 FROM coinfleet_predictions GROUP BY model_id, mint, metric_ts HAVING count(*) > 1
) AS repeated

-- name: models_behind --
-- Models with events after their cursor, or with no cursor yet.
SELECT (SELECT count(*) FROM coinfleet_cursors AS c
        WHERE EXISTS (SELECT 1 FROM coinfleet_events AS e WHERE (e.tx, e.seq) > (c.tx, c.seq)))
     + (SELECT count(*) FROM coinfleet_models AS m
        WHERE m.status = 'active' AND NOT EXISTS (SELECT 1 FROM coinfleet_cursors AS c WHERE c.model_id = m.id))

-- name: pending_alert_count --
-- Alerts not yet delivered nor given up.
SELECT count(*) FROM coinfleet_alerts WHERE state = 'pending'

-- name: alert_keys --
-- The idempotency key of every queued alert.
SELECT idempotency_key FROM coinfleet_alerts

-- name: lease_moves --
-- How often a lease was taken again after its first owner (every epoch after the first).
SELECT coalesce(sum(epoch - 1), 0)::int8 FROM coinfleet_leases

-- name: attempts_of_keys --
-- Every logged delivery attempt of the alerts with these idempotency keys, in order: who, when, how.
SELECT a.idempotency_key, t.attempt, t.worker, t.status_code, t.error,
       extract(epoch FROM t.attempted_at)::float8 AS started, extract(epoch FROM t.finished_at)::float8 AS finished
FROM coinfleet_alerts AS a JOIN coinfleet_alert_attempts AS t ON t.alert_id = a.id
WHERE a.idempotency_key = ANY($1::text[])
ORDER BY a.idempotency_key, t.id

-- name: delivered_attempts --
-- The idempotency key and the time its outcome was stored of every attempt answered with a 2xx.
SELECT a.idempotency_key, extract(epoch FROM t.finished_at)::float8 AS finished
FROM coinfleet_alerts AS a JOIN coinfleet_alert_attempts AS t ON t.alert_id = a.id
WHERE t.status_code BETWEEN 200 AND 299

-- name: lease_holder_pids --
-- The process ids of workers holding an unexpired lease now: whom the chaos benchmark pauses.
SELECT DISTINCT w.pid FROM coinfleet_leases AS l JOIN coinfleet_workers AS w ON w.id = l.owner
WHERE l.expires_at > now()
