-- name: insert_alerts --
-- Queue a batch's webhook alerts in the scoring transaction; a repeated idempotency key is ignored.
INSERT INTO coinfleet_alerts
    (model_id, prediction_id, mint, metric_ts, tag, suppressed, url, idempotency_key, body)
SELECT $1, a.prediction_id, a.mint, a.metric_ts, a.tag, a.suppressed, a.url, a.idempotency_key, a.body
FROM unnest($2::int8[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[])
     AS a (prediction_id, mint, metric_ts, tag, suppressed, url, idempotency_key, body)
ON CONFLICT (idempotency_key) DO NOTHING

-- name: model_prediction_totals --
-- A model's stored predictions and the metric time of its newest, kept on its cursor row by the lanes.
SELECT coalesce(max(stored_predictions), 0) AS total, max(last_prediction_at) AS last_prediction_at
FROM coinfleet_cursors WHERE model_id = $1

-- name: models_with_pending_alerts --
-- Models that have alerts waiting for delivery.
SELECT DISTINCT model_id FROM coinfleet_alerts WHERE state = 'pending'

-- name: claim_alert --
-- Claim a model's oldest pending alert when it is due and unclaimed; never a younger one past it.
WITH head AS (
    SELECT id FROM coinfleet_alerts
    WHERE model_id = $1 AND state = 'pending'
    ORDER BY id LIMIT 1
), claimable AS (
    SELECT a.id FROM coinfleet_alerts AS a JOIN head USING (id)
    WHERE a.state = 'pending' AND a.next_attempt_at <= now()
      AND (a.claimed_until IS NULL OR a.claimed_until < now())
    FOR UPDATE OF a SKIP LOCKED
)
UPDATE coinfleet_alerts AS a
SET attempts = a.attempts + 1, claimed_by = $2, claimed_until = now() + make_interval(secs => $3)
FROM claimable, coinfleet_models AS m
WHERE a.id = claimable.id AND m.id = a.model_id
RETURNING a.id, a.model_id, a.url, a.idempotency_key, a.body, a.attempts,
          extract(epoch FROM now() - a.pending_since)::float8 AS age_seconds,
          m.settings ->> 'webhook_secret' AS secret

-- name: seconds_until_head_due --
-- Seconds until a model's oldest pending alert may be claimed (NULL: nothing pending).
SELECT extract(epoch FROM greatest(next_attempt_at, coalesce(claimed_until, next_attempt_at)) - now())::float8
FROM coinfleet_alerts
WHERE model_id = $1 AND state = 'pending'
ORDER BY id LIMIT 1

-- name: insert_alert_attempt --
-- Log one delivery attempt.
INSERT INTO coinfleet_alert_attempts
    (alert_id, model_id, attempt, url, status_code, latency_ms, error, response_excerpt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)

-- name: mark_alert_delivered --
-- A successful attempt: the alert is done (only while this worker still holds the claim).
UPDATE coinfleet_alerts
SET state = 'delivered', delivered_at = now(), last_status = $3, last_error = NULL,
    claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND claimed_by = $2 AND state = 'pending'

-- name: mark_alert_failed --
-- A failed attempt: retry after a delay, or give up ($4 dead) (only while this worker holds the claim).
UPDATE coinfleet_alerts
SET state = CASE WHEN $4 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => $5),
    last_status = $3, last_error = $6, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND claimed_by = $2 AND state = 'pending'

-- name: release_alert_claim --
-- Give back a claim whose attempt was interrupted (shutdown); the attempt does not count.
UPDATE coinfleet_alerts
SET attempts = greatest(attempts - 1, 0), claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND claimed_by = $2 AND state = 'pending'

-- name: list_alerts --
-- The newest alerts, optionally of one model and in one state.
SELECT a.id, a.model_id, m.name AS model_name, a.prediction_id, a.mint, a.metric_ts, a.tag,
       a.suppressed, a.url, a.idempotency_key, a.state, a.attempts, a.last_status, a.last_error,
       a.next_attempt_at, a.created_at, a.delivered_at
FROM coinfleet_alerts AS a JOIN coinfleet_models AS m ON m.id = a.model_id
WHERE ($1::int IS NULL OR a.model_id = $1) AND ($2::text IS NULL OR a.state = $2)
ORDER BY a.id DESC
LIMIT $3

-- name: list_alert_attempts --
-- Every logged attempt of one alert, oldest first.
SELECT attempt, url, status_code, latency_ms, error, response_excerpt, attempted_at
FROM coinfleet_alert_attempts WHERE alert_id = $1 ORDER BY id

-- name: retry_alert --
-- Put one dead alert back in the queue, to the given URL, with a fresh attempt budget.
UPDATE coinfleet_alerts
SET state = 'pending', attempts = 0, next_attempt_at = now(), pending_since = now(), url = $2,
    claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND state = 'dead'
RETURNING id

-- name: retry_dead_alerts_of_model --
-- Put every dead alert of one model back in the queue, to the given URL, with a fresh attempt budget.
UPDATE coinfleet_alerts
SET state = 'pending', attempts = 0, next_attempt_at = now(), pending_since = now(), url = $2,
    claimed_by = NULL, claimed_until = NULL
WHERE model_id = $1 AND state = 'dead'
RETURNING id

-- name: get_alert_model --
-- The model an alert belongs to.
SELECT model_id FROM coinfleet_alerts WHERE id = $1

-- name: notify_alerts --
-- Wake delivery workers (sent at commit).
SELECT pg_notify('coinfleet_alerts', '')

-- name: prune_alert_attempts --
-- Delete attempt log rows older than $1 seconds.
DELETE FROM coinfleet_alert_attempts WHERE attempted_at < now() - make_interval(secs => $1)

-- name: prune_delivered_alerts --
-- Delete alerts delivered more than $1 seconds ago (their attempts go with them).
DELETE FROM coinfleet_alerts
WHERE state = 'delivered' AND delivered_at < now() - make_interval(secs => $1)
