-- name: rollup_models --
-- The models whose statistics are rolled up: every model that is not deleted.
SELECT id FROM coinfleet_models WHERE status <> 'deleted' ORDER BY id

-- name: rollup_create --
-- A rollup state for model $1 (reaching nothing yet) unless it has one.
INSERT INTO coinfleet_stats_rolled (model_id) VALUES ($1) ON CONFLICT (model_id) DO NOTHING

-- name: rollup_begin --
-- Model $1's rollup state, locked for this transaction (no row while another advances it): how far it
-- reaches, the next id it may reach, and whether that id has settled — every transaction running when
-- it was seen has ended (its xmax is at most the oldest running one) and $2 seconds have passed. The
-- first statement of its transaction: the snapshot is taken before this transaction has an id.
SELECT through_id, candidate_id,
       candidate_xmax <= pg_snapshot_xmin(pg_current_snapshot())
           AND candidate_at <= now() - make_interval(secs => $2) AS settled
FROM coinfleet_stats_rolled
WHERE model_id = $1
FOR UPDATE SKIP LOCKED

-- name: rollup_limit --
-- How far model $1's rollup may reach from id $2: below its oldest prediction still waiting for an
-- outcome, and at most $3 of its predictions further (NULL: no bound from either).
SELECT (SELECT min(prediction_id) - 1 FROM coinfleet_open_predictions WHERE model_id = $1) AS before_open,
       (SELECT id FROM coinfleet_predictions WHERE model_id = $1 AND id > $2
        ORDER BY model_id, id OFFSET $3 - 1 LIMIT 1) AS step_end

-- name: rollup_add --
-- Add model $1's predictions with ids in ($2, $3] to its hourly rollup, gain bins and calibration sums
-- and move its rollup to $3; the rows added. Run only over judged predictions that can no longer change.
WITH facts AS (
    SELECT date_trunc('hour', f.metric_ts, 'UTC') AS hour, f.*
    FROM coinfleet_prediction_facts AS f
    WHERE f.model_id = $1 AND f.id > $2 AND f.id <= $3
), sums AS (
    INSERT INTO coinfleet_stats_rollup AS r
        (model_id, hour, predictions, negative, positive, alert, evaluated, pending, ok, no_data,
         invalid_price, horizon_success, horizon_failed, within_success, within_failed,
         alerts_judged_at_horizon, alerts_reached_at_horizon, alerts_judged_within, alerts_hit_within,
         alert_gains, alert_gain_sum)
    SELECT $1, hour, count(*), sum(negative), sum(positive), sum(alert), sum(evaluated), sum(pending),
           sum(ok), sum(no_data), sum(invalid_price), sum(horizon_success), sum(horizon_failed),
           sum(within_success), sum(within_failed), sum(alerts_judged_at_horizon),
           sum(alerts_reached_at_horizon), sum(alerts_judged_within), sum(alerts_hit_within),
           count(alert_gain), coalesce(sum(alert_gain), 0)
    FROM facts GROUP BY hour
    ON CONFLICT (model_id, hour) DO UPDATE SET
        predictions = r.predictions + excluded.predictions,
        negative = r.negative + excluded.negative,
        positive = r.positive + excluded.positive,
        alert = r.alert + excluded.alert,
        evaluated = r.evaluated + excluded.evaluated,
        pending = r.pending + excluded.pending,
        ok = r.ok + excluded.ok,
        no_data = r.no_data + excluded.no_data,
        invalid_price = r.invalid_price + excluded.invalid_price,
        horizon_success = r.horizon_success + excluded.horizon_success,
        horizon_failed = r.horizon_failed + excluded.horizon_failed,
        within_success = r.within_success + excluded.within_success,
        within_failed = r.within_failed + excluded.within_failed,
        alerts_judged_at_horizon = r.alerts_judged_at_horizon + excluded.alerts_judged_at_horizon,
        alerts_reached_at_horizon = r.alerts_reached_at_horizon + excluded.alerts_reached_at_horizon,
        alerts_judged_within = r.alerts_judged_within + excluded.alerts_judged_within,
        alerts_hit_within = r.alerts_hit_within + excluded.alerts_hit_within,
        alert_gains = r.alert_gains + excluded.alert_gains,
        alert_gain_sum = r.alert_gain_sum + excluded.alert_gain_sum
), bins AS (
    INSERT INTO coinfleet_stats_gain_bins AS b (model_id, hour, bin, n, total)
    SELECT $1, hour, coinfleet_gain_bin(alert_gain), count(*), sum(alert_gain)
    FROM facts WHERE alert_gain IS NOT NULL GROUP BY 2, 3
    ON CONFLICT (model_id, hour, bin) DO UPDATE SET n = b.n + excluded.n, total = b.total + excluded.total
), calibrated AS (
    INSERT INTO coinfleet_stats_calibration AS k
        (model_id, hour, bucket, horizon_count, horizon_sum_p, horizon_sum_label, horizon_sum_se,
         within_count, within_sum_p, within_sum_label, within_sum_se)
    SELECT $1, hour, least(floor(probability * 10)::int, 9),
           count(label_at_horizon), coalesce(sum(probability) FILTER (WHERE label_at_horizon IS NOT NULL), 0),
           coalesce(sum(label_at_horizon), 0), coalesce(sum((probability - label_at_horizon) ^ 2), 0),
           count(label_within), coalesce(sum(probability) FILTER (WHERE label_within IS NOT NULL), 0),
           coalesce(sum(label_within), 0), coalesce(sum((probability - label_within) ^ 2), 0)
    FROM facts WHERE label_at_horizon IS NOT NULL OR label_within IS NOT NULL GROUP BY 2, 3
    ON CONFLICT (model_id, hour, bucket) DO UPDATE SET
        horizon_count = k.horizon_count + excluded.horizon_count,
        horizon_sum_p = k.horizon_sum_p + excluded.horizon_sum_p,
        horizon_sum_label = k.horizon_sum_label + excluded.horizon_sum_label,
        horizon_sum_se = k.horizon_sum_se + excluded.horizon_sum_se,
        within_count = k.within_count + excluded.within_count,
        within_sum_p = k.within_sum_p + excluded.within_sum_p,
        within_sum_label = k.within_sum_label + excluded.within_sum_label,
        within_sum_se = k.within_sum_se + excluded.within_sum_se
), moved AS (
    UPDATE coinfleet_stats_rolled SET through_id = $3 WHERE model_id = $1
)
SELECT count(*) FROM facts

-- name: rollup_candidate --
-- Remember model $1's newest prediction id as the next its rollup may reach, with the first transaction
-- id not yet given out (every transaction that may still store a lower id is below it).
UPDATE coinfleet_stats_rolled
SET candidate_id = (SELECT max(id) FROM coinfleet_predictions WHERE model_id = $1),
    candidate_xmax = pg_snapshot_xmax(pg_current_snapshot()),
    candidate_at = now()
WHERE model_id = $1
