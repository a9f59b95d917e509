-- name: delete_model_alerts --
-- Remove every alert of model $1 (their attempts go with them).
DELETE FROM coinfleet_alerts WHERE model_id = $1

-- name: delete_model_evaluations --
-- Remove every evaluation and open evaluation of model $1.
WITH settled AS (DELETE FROM coinfleet_evaluations WHERE model_id = $1)
DELETE FROM coinfleet_open_predictions WHERE model_id = $1

-- name: delete_model_predictions --
-- Remove every prediction, scan-cache row and statistics rollup of model $1; returns how many
-- predictions went.
WITH cache AS (DELETE FROM coinfleet_scan_state WHERE model_id = $1),
     rollup AS (DELETE FROM coinfleet_stats_rollup WHERE model_id = $1),
     bins AS (DELETE FROM coinfleet_stats_gain_bins WHERE model_id = $1),
     calibrated AS (DELETE FROM coinfleet_stats_calibration WHERE model_id = $1),
     rolled AS (DELETE FROM coinfleet_stats_rolled WHERE model_id = $1),
     gone AS (DELETE FROM coinfleet_predictions WHERE model_id = $1 RETURNING 1)
SELECT count(*) FROM gone

-- name: latest_metric_time --
-- The time of coin $1's newest metric row at or before $2 (NULL: now); never a row dated more than $3
-- seconds ahead of the wall clock (or 'infinity'), which no lane scores either.
SELECT max("timestamp") FROM coin_metrics
WHERE mint = $1
  AND "timestamp" <= least(coalesce($2::timestamptz, now()), now() + make_interval(secs => $3))
