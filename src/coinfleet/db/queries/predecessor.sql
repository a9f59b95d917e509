-- name: predecessor_has_tables --
-- Whether the database holds the predecessor's model table (its prediction log may be missing).
SELECT to_regclass('prediction_active_models') IS NOT NULL AS models,
       to_regclass('model_predictions') IS NOT NULL AS predictions

-- name: predecessor_models --
-- Every model the predecessor imported, with all its columns (they differ between its versions).
SELECT * FROM prediction_active_models ORDER BY id

-- name: predecessor_predictions --
-- One model's prediction log with evaluations and ATH, oldest first.
SELECT * FROM model_predictions WHERE active_model_id = $1 ORDER BY prediction_timestamp, id

-- name: create_history_rows --
-- A scratch table for one model's rows from the predecessor (gone at commit).
CREATE TEMPORARY TABLE coinfleet_history_rows (
    predecessor_id        bigint,
    mint                  text,
    metric_ts             timestamptz,
    evaluate_at           timestamptz,
    probability           double precision,
    prediction            smallint,
    tag                   text,
    phase_id              integer,
    price_open            double precision,
    price_high            double precision,
    price_low             double precision,
    price_close           double precision,
    market_cap_close      double precision,
    volume_sol            double precision,
    status                text,
    price_at_horizon      double precision,
    change_at_horizon_pct double precision,
    reached_at_horizon    boolean,
    hit_within            boolean,
    max_change_pct        double precision,
    max_change_at         timestamptz,
    min_change_pct        double precision,
    min_change_at         timestamptz,
    result_at_horizon     text,
    result_within         text,
    evaluated_at          timestamptz
) ON COMMIT DROP

-- name: insert_history --
-- Store the scratch rows as the model's predictions, and the outcomes of those already evaluated; rows
-- stored by an earlier run (same model, coin and time) are skipped. Counts of both.
WITH rows AS (
    SELECT DISTINCT ON (mint, metric_ts) * FROM coinfleet_history_rows ORDER BY mint, metric_ts, predecessor_id
), inserted AS (
    INSERT INTO coinfleet_predictions
        (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
         evaluate_at, phase_id, price_open, price_high, price_low, price_close, market_cap_close, volume_sol,
         event_tx, event_seq)
    SELECT $1, $2, mint, metric_ts, probability, prediction, tag, $3, $4, evaluate_at, phase_id,
           price_open, price_high, price_low, price_close, market_cap_close, volume_sol, '0'::xid8, 0
    FROM rows
    ON CONFLICT (model_id, mint, metric_ts) DO NOTHING
    RETURNING id, mint, metric_ts
), evaluated AS (
    INSERT INTO coinfleet_evaluations
        (prediction_id, model_id, status, price_at_prediction, price_at_horizon, change_at_horizon_pct,
         reached_at_horizon, hit_within, max_change_pct, max_change_at, min_change_pct, min_change_at,
         result_at_horizon, result_within, grace_seconds, evaluated_at)
    SELECT i.id, $1, r.status, r.price_close, r.price_at_horizon, r.change_at_horizon_pct,
           r.reached_at_horizon, r.hit_within, r.max_change_pct, r.max_change_at, r.min_change_pct,
           r.min_change_at, r.result_at_horizon, r.result_within, 0, coalesce(r.evaluated_at, now())
    FROM inserted AS i JOIN rows AS r USING (mint, metric_ts)
    WHERE r.result_at_horizon IS NOT NULL
    RETURNING prediction_id
)
SELECT (SELECT count(*) FROM inserted) AS predictions, (SELECT count(*) FROM evaluated) AS evaluations,
       (SELECT max(metric_ts) FROM inserted) AS newest

-- name: close_evaluated_history --
-- Evaluated predictions brought over leave the work queue their insert put them in.
DELETE FROM coinfleet_open_predictions AS o
USING coinfleet_evaluations AS e
WHERE o.model_id = $1 AND e.prediction_id = o.prediction_id

-- name: count_history --
-- The model's stored predictions after the move-over (its totals continue from them).
UPDATE coinfleet_cursors
SET stored_predictions = stored_predictions + $2,
    last_prediction_at = greatest(last_prediction_at, $3),
    scan_cache_complete = scan_cache_complete AND $2 = 0
WHERE model_id = $1
