-- name: predecessor_has_tables --
-- Whether the database holds the predecessor's model table (its prediction log may be missing).
SELECT to_regclass('prediction_active_models') IS NOT NULL AS models,
       to_regclass('model_predictions') IS NOT NULL AS predictions,
       to_regclass('coin_scan_cache') IS NOT NULL AS scan_cache

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

-- name: predecessor_ignore_windows --
-- One model's ignore windows still running in the predecessor's scan cache (the rest of that cache
-- coinfleet rebuilds from the predictions brought over). Its tags as coinfleet names them.
SELECT coin_id AS mint, ignore_until,
       CASE ignore_reason WHEN 'bad' THEN 'negative' ELSE ignore_reason END AS ignore_reason,
       last_scan_at, coalesce(last_probability, 0)::float8 AS last_probability,
       CASE WHEN was_alert THEN 'alert' WHEN last_prediction = 1 THEN 'positive' ELSE 'negative' END AS last_tag
FROM coin_scan_cache
WHERE active_model_id = $1 AND ignore_until > now() AND ignore_reason IN ('bad', 'positive', 'alert')
ORDER BY coin_id

-- name: carry_ignore_windows --
-- The running windows as scan-cache rows of model $1; a coin coinfleet already keeps state for is left
-- as it is (a second run changes nothing). The scan is dated no earlier than the coin's newest
-- prediction, so the rebuild after the move-over (migration 0010) keeps the window; counts by tag are
-- those of the predictions brought over, as that rebuild counts them. How many rows were added.
WITH windows AS (
    SELECT * FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::float8[], $7::text[])
        AS w (mint, ignore_until, ignore_reason, last_scan_at, last_probability, last_tag)
), stored AS (
    SELECT p.mint, max(p.metric_ts) AS newest, count(*) FILTER (WHERE p.tag = 'negative') AS negative,
           count(*) FILTER (WHERE p.tag = 'positive') AS positive, count(*) FILTER (WHERE p.tag = 'alert') AS alert
    FROM coinfleet_predictions AS p JOIN windows AS w USING (mint)
    WHERE p.model_id = $1
    GROUP BY p.mint
), carried AS (
    INSERT INTO coinfleet_scan_state
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT $1, w.mint, coalesce(greatest(w.last_scan_at, s.newest), now()), w.last_probability, w.last_tag,
           w.ignore_until, w.ignore_reason, coalesce(s.negative, 0), coalesce(s.positive, 0), coalesce(s.alert, 0)
    FROM windows AS w LEFT JOIN stored AS s USING (mint)
    ON CONFLICT (model_id, mint) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM carried
