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

-- name: lock_model_claims --
-- Serialise claims on one model's queue until the transaction ends ($1 namespace, $2 model id).
SELECT pg_advisory_xact_lock($1::int, $2::int)

-- name: session_identity --
-- The backend pid and start time of this connection: a claim names them, so anyone can tell it ended.
SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()

-- name: claim_alerts --
-- Claim up to $4 alerts from the head of a model's queue (call under lock_model_claims) for the live
-- session ($5, $6; none while it is not alive): all go to the head's URL, the run stops at the first
-- one not due or still claimed (a claim of a session from before a server restart holds $7 s past the
-- start). The head's attempt starts (counted, logged); attempts left open by a session that ended are
-- closed as cut short.
WITH queue AS (
    SELECT a.id, a.url,
           a.next_attempt_at <= now() AND coalesce(
               coinfleet_alert_claim_ends(a.claimed_until, a.claimed_pid, a.claimed_backend_start, $7) <= now(),
               true
           ) AS free
    FROM coinfleet_alerts AS a
    WHERE a.model_id = $1 AND a.state = 'pending' AND (SELECT coinfleet_session_alive($5, $6))
    ORDER BY a.id
    LIMIT $4
), numbered AS (
    SELECT id, url, free, row_number() OVER (ORDER BY id) AS n, first_value(url) OVER (ORDER BY id) AS head_url
    FROM queue
), head_run AS (
    SELECT id, n FROM numbered
    WHERE n < coalesce((SELECT min(n) FROM numbered WHERE NOT free OR url <> head_url), $4 + 1)
), cut_short AS (
    UPDATE coinfleet_alert_attempts AS t
    SET finished_at = now(),
        error = 'cut short: the worker''s database session ended before the outcome was stored '
                '(the request may or may not have reached the receiver)'
    FROM head_run WHERE t.alert_id = head_run.id AND t.finished_at IS NULL
    RETURNING t.id
), claimed AS (
    UPDATE coinfleet_alerts AS a
    SET attempts = a.attempts + (head_run.n = 1)::int,
        claimed_by = $2, claimed_until = now() + make_interval(secs => $3),
        claimed_pid = $5, claimed_backend_start = $6
    FROM head_run WHERE a.id = head_run.id
    RETURNING a.id, a.model_id, a.mint, a.url, a.idempotency_key, a.body, a.attempts, a.pending_since, head_run.n
), logged AS (
    INSERT INTO coinfleet_alert_attempts (alert_id, model_id, attempt, url, worker)
    SELECT id, model_id, attempts, url, $2 FROM claimed WHERE n = 1
    RETURNING id, alert_id
)
SELECT c.id, c.model_id, c.mint, c.url, c.idempotency_key, c.body, c.attempts, l.id AS attempt_id,
       extract(epoch FROM now() - c.pending_since)::float8 AS age_seconds, s.secret,
       (SELECT count(*) FROM cut_short) AS cut_short
FROM claimed AS c
LEFT JOIN logged AS l ON l.alert_id = c.id
LEFT JOIN coinfleet_webhook_secrets AS s ON s.model_id = c.model_id
ORDER BY c.id

-- name: alert_queue_head --
-- A model's oldest pending alert: its URL and the seconds until it may be claimed, its claim's end
-- included ($2: the grace of a claim from before a server restart; no row: none pending).
SELECT a.url,
       extract(epoch FROM greatest(
           a.next_attempt_at,
           coinfleet_alert_claim_ends(a.claimed_until, a.claimed_pid, a.claimed_backend_start, $2)
       ) - now())::float8 AS due_in
FROM coinfleet_alerts AS a
WHERE a.model_id = $1 AND a.state = 'pending'
ORDER BY a.id
LIMIT 1

-- name: settle_alert --
-- Store an attempt's outcome ($3 its log row) and mark its alert ($2) delivered, pending again after
-- $10 s, or dead, while this worker ($1) holds the claim; then start the attempt at the next claimed
-- alert ($11, NULL for none) while its claim holds (unexpired, its session alive: nobody else may take it):
-- counted and logged, its log row's id and attempt number returned.
WITH logged AS (
    UPDATE coinfleet_alert_attempts
    SET url = $4, status_code = $5, latency_ms = $6, error = $7, response_excerpt = $8, finished_at = now()
    WHERE id = $3
    RETURNING id
), settled AS (
    UPDATE coinfleet_alerts
    SET state = $9,
        delivered_at = CASE WHEN $9 = 'delivered' THEN now() END,
        next_attempt_at = now() + make_interval(secs => $10),
        last_status = $5, last_error = $7,
        claimed_by = NULL, claimed_until = NULL, claimed_pid = NULL, claimed_backend_start = NULL
    WHERE id = $2 AND claimed_by = $1 AND state = 'pending'
    RETURNING id
), next_alert AS (
    UPDATE coinfleet_alerts SET attempts = attempts + 1
    WHERE id = $11 AND claimed_by = $1 AND state = 'pending'
      AND claimed_until > now() AND coinfleet_session_alive(claimed_pid, claimed_backend_start)
    RETURNING id, model_id, attempts, url
)
INSERT INTO coinfleet_alert_attempts (alert_id, model_id, attempt, url, worker)
SELECT id, model_id, attempts, url, $1 FROM next_alert
RETURNING id, attempt

-- name: start_alert_attempt --
-- Start the attempt at a claimed alert ($2) this worker ($1) holds (unexpired, a live session): counted and
-- logged; its log row's id and attempt number returned (no row: the claim was lost or may be soon).
WITH next_alert AS (
    UPDATE coinfleet_alerts SET attempts = attempts + 1
    WHERE id = $2 AND claimed_by = $1 AND state = 'pending'
      AND claimed_until > now() AND coinfleet_session_alive(claimed_pid, claimed_backend_start)
    RETURNING id, model_id, attempts, url
)
INSERT INTO coinfleet_alert_attempts (alert_id, model_id, attempt, url, worker)
SELECT id, model_id, attempts, url, $1 FROM next_alert
RETURNING id, attempt

-- name: release_alert_claims --
-- Give back this worker's claims on these alerts (a run's end: settled alerts hold none).
UPDATE coinfleet_alerts
SET claimed_by = NULL, claimed_until = NULL, claimed_pid = NULL, claimed_backend_start = NULL
WHERE id = ANY($1::int8[]) AND claimed_by = $2 AND state = 'pending'

-- name: wake_receiver_alerts --
-- A receiver answers again: its pending alerts waiting out a backoff may go now ($1: the start of its
-- URLs, scheme://host:port/), and delivery workers are woken.
WITH woken AS (
    UPDATE coinfleet_alerts SET next_attempt_at = now()
    WHERE state = 'pending' AND next_attempt_at > now() AND starts_with(url, $1)
    RETURNING id
)
SELECT pg_notify('coinfleet_alerts', '') FROM (SELECT count(*) AS n FROM woken) AS w WHERE w.n > 0

-- name: get_webhook_secret --
-- A model's webhook signing secret.
SELECT secret FROM coinfleet_webhook_secrets WHERE model_id = $1

-- name: set_webhook_secret --
-- Replace a model's webhook signing secret.
INSERT INTO coinfleet_webhook_secrets (model_id, secret) VALUES ($1, $2)
ON CONFLICT (model_id) DO UPDATE SET secret = excluded.secret, updated_at = now()

-- name: list_alert_attempts --
-- Every logged attempt of one alert, oldest first.
SELECT attempt, url, status_code, latency_ms, error, response_excerpt, attempted_at, finished_at
FROM coinfleet_alert_attempts WHERE alert_id = $1 ORDER BY id

-- name: retry_alert --
-- Put one dead alert back in the queue, to the given URL, with a fresh attempt budget.
UPDATE coinfleet_alerts
SET state = 'pending', attempts = 0, next_attempt_at = now(), pending_since = now(), url = $2,
    claimed_by = NULL, claimed_until = NULL, claimed_pid = NULL, claimed_backend_start = NULL
WHERE id = $1 AND state = 'dead'
RETURNING id

-- name: retry_dead_alerts_of_model --
-- Put every dead alert of one model back in the queue, to the given URL, with a fresh attempt budget.
UPDATE coinfleet_alerts
SET state = 'pending', attempts = 0, next_attempt_at = now(), pending_since = now(), url = $2,
    claimed_by = NULL, claimed_until = NULL, claimed_pid = NULL, claimed_backend_start = NULL
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
