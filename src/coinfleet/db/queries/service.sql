-- name: model_lanes --
-- Per model that is not deleted (or only model $1): its cursor's totals, how many events lie after the
-- cursor, when the oldest of them was inserted, and its pending and dead alerts (counted up to $2);
-- and the worker holding its lease (owner NULL when released or expired).
-- Events after the cursor are counted exactly up to $3; past that the number is the event sequence's
-- last value minus the cursor's (rolled-back inserts leave gaps in it, so it is an estimate), capped at
-- $2: counting up to 100,000 events per model on every call took 0.96 s for 20 lagging models.
SELECT m.id, m.name, m.status, m.status_reason,
       CASE WHEN l.expires_at > now() THEN l.owner END AS owner,
       l.epoch AS lease_epoch, l.expires_at AS lease_expires_at,
       c.updated_at AS cursor_moved_at,
       coalesce(c.stored_predictions, 0) AS stored_predictions,
       c.last_prediction_at,
       CASE WHEN behind.events > $3 THEN least(greatest(newest.seq - c.seq, behind.events), $2)
            ELSE behind.events END AS lag_events,
       behind.events > $3 AS lag_events_estimated,
       oldest.inserted_at AS oldest_unread_inserted_at,
       extract(epoch FROM now() - oldest.inserted_at)::float8 AS lag_seconds,
       pending.n AS alerts_pending,
       dead.n AS alerts_dead
FROM coinfleet_models AS m
LEFT JOIN coinfleet_cursors AS c ON c.model_id = m.id
CROSS JOIN (
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM coinfleet_events_seq_seq
) AS newest
LEFT JOIN coinfleet_leases AS l ON l.model_id = m.id
LEFT JOIN LATERAL (
    SELECT count(*) AS events
    FROM (SELECT FROM coinfleet_events AS e WHERE (e.tx, e.seq) > (c.tx, c.seq) LIMIT $3 + 1) AS capped
) AS behind ON true
LEFT JOIN LATERAL (
    SELECT e.inserted_at FROM coinfleet_events AS e
    WHERE (e.tx, e.seq) > (c.tx, c.seq)
    ORDER BY e.tx, e.seq
    LIMIT 1
) AS oldest ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS n
    FROM (SELECT FROM coinfleet_alerts AS a WHERE a.model_id = m.id AND a.state = 'pending' LIMIT $2) AS capped
) AS pending
CROSS JOIN LATERAL (
    SELECT count(*) AS n
    FROM (SELECT FROM coinfleet_alerts AS a WHERE a.model_id = m.id AND a.state = 'dead' LIMIT $2) AS capped
) AS dead
WHERE m.status <> 'deleted' AND ($1::int IS NULL OR m.id = $1::int)
ORDER BY m.id

-- name: list_predictions --
-- A page of predictions of every model, newest (highest id) first, below id $1, filtered by tag $3,
-- evaluation state $4 (waiting | evaluated), result $5 by rule $6 (horizon | within), probability in
-- [$7, $8], highest change so far in [$9, $10], change at the horizon in [$11, $12], metric time in
-- [$13, $14); $15 rows; ($2, the model, is NULL here: list_model_predictions takes it). Examines at most
-- the $16 predictions below $1 (walking the primary key backwards): a filter that matches few rows
-- returns a short page instead of walking the whole table (prediction_scan_floor says where it stopped).
SELECT p.id, p.model_id, m.name AS model_name, p.model_version, p.mint, p.metric_ts, p.probability,
       p.prediction, p.tag, p.alert_threshold, p.target, p.evaluate_at, p.phase_id, p.price_open,
       p.price_high, p.price_low, p.price_close, p.market_cap_close, p.volume_sol, p.created_at,
       e.prediction_id IS NOT NULL AS evaluated,
       coalesce(e.max_change_pct, o.max_change_pct) AS max_change_pct,
       coalesce(e.max_change_at, o.max_change_at) AS max_change_at,
       coalesce(e.min_change_pct, o.min_change_pct) AS min_change_pct,
       coalesce(e.min_change_at, o.min_change_at) AS min_change_at,
       e.status AS evaluation_status, e.result_at_horizon, e.result_within, e.price_at_horizon,
       e.change_at_horizon_pct, e.hit_within, e.hit_at, e.evaluated_at
FROM (SELECT * FROM coinfleet_predictions WHERE id < $1::int8 ORDER BY id DESC LIMIT $16) AS p
JOIN coinfleet_models AS m ON m.id = p.model_id
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
LEFT JOIN coinfleet_open_predictions AS o ON o.prediction_id = p.id
WHERE $2::int IS NULL
  AND ($3::text IS NULL OR p.tag = $3::text)
  AND ($4::text IS NULL OR (e.prediction_id IS NOT NULL) = ($4::text = 'evaluated'))
  AND ($5::text IS NULL
       OR (CASE WHEN $6::text = 'within' THEN e.result_within ELSE e.result_at_horizon END) = $5::text)
  AND ($7::float8 IS NULL OR p.probability >= $7::float8)
  AND ($8::float8 IS NULL OR p.probability <= $8::float8)
  AND ($9::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) >= $9::float8)
  AND ($10::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) <= $10::float8)
  AND ($11::float8 IS NULL OR e.change_at_horizon_pct >= $11::float8)
  AND ($12::float8 IS NULL OR e.change_at_horizon_pct <= $12::float8)
  AND ($13::timestamptz IS NULL OR p.metric_ts >= $13::timestamptz)
  AND ($14::timestamptz IS NULL OR p.metric_ts < $14::timestamptz)
ORDER BY p.id DESC
LIMIT $15

-- name: list_model_predictions --
-- list_predictions of the one model $2: examines at most that model's $16 predictions below id $1,
-- walking (model_id, id) backwards, so a quiet model's page never reads the other models' rows.
SELECT p.id, p.model_id, m.name AS model_name, p.model_version, p.mint, p.metric_ts, p.probability,
       p.prediction, p.tag, p.alert_threshold, p.target, p.evaluate_at, p.phase_id, p.price_open,
       p.price_high, p.price_low, p.price_close, p.market_cap_close, p.volume_sol, p.created_at,
       e.prediction_id IS NOT NULL AS evaluated,
       coalesce(e.max_change_pct, o.max_change_pct) AS max_change_pct,
       coalesce(e.max_change_at, o.max_change_at) AS max_change_at,
       coalesce(e.min_change_pct, o.min_change_pct) AS min_change_pct,
       coalesce(e.min_change_at, o.min_change_at) AS min_change_at,
       e.status AS evaluation_status, e.result_at_horizon, e.result_within, e.price_at_horizon,
       e.change_at_horizon_pct, e.hit_within, e.hit_at, e.evaluated_at
FROM (SELECT * FROM coinfleet_predictions
      WHERE model_id = $2::int AND id < $1::int8 ORDER BY model_id DESC, id DESC LIMIT $16) AS p
JOIN coinfleet_models AS m ON m.id = p.model_id
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
LEFT JOIN coinfleet_open_predictions AS o ON o.prediction_id = p.id
WHERE ($3::text IS NULL OR p.tag = $3::text)
  AND ($4::text IS NULL OR (e.prediction_id IS NOT NULL) = ($4::text = 'evaluated'))
  AND ($5::text IS NULL
       OR (CASE WHEN $6::text = 'within' THEN e.result_within ELSE e.result_at_horizon END) = $5::text)
  AND ($7::float8 IS NULL OR p.probability >= $7::float8)
  AND ($8::float8 IS NULL OR p.probability <= $8::float8)
  AND ($9::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) >= $9::float8)
  AND ($10::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) <= $10::float8)
  AND ($11::float8 IS NULL OR e.change_at_horizon_pct >= $11::float8)
  AND ($12::float8 IS NULL OR e.change_at_horizon_pct <= $12::float8)
  AND ($13::timestamptz IS NULL OR p.metric_ts >= $13::timestamptz)
  AND ($14::timestamptz IS NULL OR p.metric_ts < $14::timestamptz)
ORDER BY p.id DESC
LIMIT $15

-- name: prediction_scan_floor --
-- The lowest id and its metric time among the $3 predictions (of model $2; NULL: of every model) below
-- id $1 that a page examined, then the next older one: fewer than two rows when the page reached the
-- oldest prediction (nothing is left to search).
(SELECT id, metric_ts FROM coinfleet_predictions
 WHERE $2::int IS NULL AND id < $1::int8 ORDER BY id DESC OFFSET $3 - 1 LIMIT 2)
UNION ALL
(SELECT id, metric_ts FROM coinfleet_predictions
 WHERE model_id = $2::int AND id < $1::int8 ORDER BY model_id DESC, id DESC OFFSET $3 - 1 LIMIT 2)

-- name: prediction_time_start --
-- One more than the highest id of a prediction (of model $2; NULL: any) made before metric time $1: a
-- page with that end of a time range starts its walk there. Read through the block-range index on
-- metric time (`id + 0` and `model_id + 0` keep the planner off the btrees, whose walks would skip
-- every newer row); cheap for a time far back, the caller bounds it with a statement timeout.
SELECT max(id + 0) + 1 AS start
FROM coinfleet_predictions
WHERE metric_ts < $1::timestamptz AND ($2::int IS NULL OR model_id + 0 = $2::int)

-- name: list_coin_predictions --
-- list_predictions for the one coin $16: each model's predictions of it found through the unique key
-- (model, coin, metric time), so a coin's page costs the same at any table size.
SELECT p.id, p.model_id, m.name AS model_name, p.model_version, p.mint, p.metric_ts, p.probability,
       p.prediction, p.tag, p.alert_threshold, p.target, p.evaluate_at, p.phase_id, p.price_open,
       p.price_high, p.price_low, p.price_close, p.market_cap_close, p.volume_sol, p.created_at,
       e.prediction_id IS NOT NULL AS evaluated,
       coalesce(e.max_change_pct, o.max_change_pct) AS max_change_pct,
       coalesce(e.max_change_at, o.max_change_at) AS max_change_at,
       coalesce(e.min_change_pct, o.min_change_pct) AS min_change_pct,
       coalesce(e.min_change_at, o.min_change_at) AS min_change_at,
       e.status AS evaluation_status, e.result_at_horizon, e.result_within, e.price_at_horizon,
       e.change_at_horizon_pct, e.hit_within, e.hit_at, e.evaluated_at
FROM coinfleet_models AS m
CROSS JOIN LATERAL (
    SELECT * FROM coinfleet_predictions AS q
    WHERE q.model_id = m.id AND q.mint = $16::text AND q.id < $1::int8
      AND ($13::timestamptz IS NULL OR q.metric_ts >= $13::timestamptz)
      AND ($14::timestamptz IS NULL OR q.metric_ts < $14::timestamptz)
) AS p
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
LEFT JOIN coinfleet_open_predictions AS o ON o.prediction_id = p.id
WHERE ($2::int IS NULL OR m.id = $2::int)
  AND ($3::text IS NULL OR p.tag = $3::text)
  AND ($4::text IS NULL OR (e.prediction_id IS NOT NULL) = ($4::text = 'evaluated'))
  AND ($5::text IS NULL
       OR (CASE WHEN $6::text = 'within' THEN e.result_within ELSE e.result_at_horizon END) = $5::text)
  AND ($7::float8 IS NULL OR p.probability >= $7::float8)
  AND ($8::float8 IS NULL OR p.probability <= $8::float8)
  AND ($9::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) >= $9::float8)
  AND ($10::float8 IS NULL OR coalesce(e.max_change_pct, o.max_change_pct) <= $10::float8)
  AND ($11::float8 IS NULL OR e.change_at_horizon_pct >= $11::float8)
  AND ($12::float8 IS NULL OR e.change_at_horizon_pct <= $12::float8)
ORDER BY p.id DESC
LIMIT $15

-- name: coin_metric_rows --
-- The newest $4 coin_metrics rows of coin $1 with a time in [$2, $3) (NULL: unbounded), newest first.
SELECT mint, "timestamp", phase_id_at_time,
       price_open::float8, price_high::float8, price_low::float8, price_close::float8,
       market_cap_close::float8, volume_sol::float8, buy_volume_sol::float8, sell_volume_sol::float8,
       num_buys::int, num_sells::int, unique_wallets::int, dev_sold_amount::float8,
       buy_pressure_ratio::float8, whale_buy_volume_sol::float8, whale_sell_volume_sol::float8,
       volatility_pct::float8, unique_signer_ratio::float8, net_volume_sol::float8
FROM coin_metrics
WHERE mint = $1 AND ($2::timestamptz IS NULL OR "timestamp" >= $2::timestamptz)
  AND ($3::timestamptz IS NULL OR "timestamp" < $3::timestamptz)
ORDER BY "timestamp" DESC
LIMIT $4

-- name: coin_alerts --
-- The newest $4 alerts of coin $1 with a metric time in [$2, $3) (NULL: unbounded), of every model.
SELECT a.id, a.model_id, m.name AS model_name, a.prediction_id, a.mint, a.metric_ts, a.tag,
       a.suppressed, a.url, a.idempotency_key, a.state, a.attempts, a.last_status, a.last_error,
       a.next_attempt_at, a.created_at, a.delivered_at
FROM coinfleet_alerts AS a JOIN coinfleet_models AS m ON m.id = a.model_id
WHERE a.mint = $1 AND ($2::timestamptz IS NULL OR a.metric_ts >= $2::timestamptz)
  AND ($3::timestamptz IS NULL OR a.metric_ts < $3::timestamptz)
ORDER BY a.metric_ts DESC, a.id DESC
LIMIT $4

-- name: list_alerts_page --
-- A page of alerts, newest first, below id $1, of model $2 (NULL: all) in state $3 (NULL: any), $4 rows.
SELECT a.id, a.model_id, m.name AS model_name, a.prediction_id, a.mint, a.metric_ts, a.tag,
       a.suppressed, a.url, a.idempotency_key, a.state, a.attempts, a.last_status, a.last_error,
       a.next_attempt_at, a.created_at, a.delivered_at
FROM coinfleet_alerts AS a JOIN coinfleet_models AS m ON m.id = a.model_id
WHERE a.id < $1::int8 AND ($2::int IS NULL OR a.model_id = $2::int) AND ($3::text IS NULL OR a.state = $3::text)
ORDER BY a.id DESC
LIMIT $4

-- name: get_alert --
-- One alert by id.
SELECT a.id, a.model_id, m.name AS model_name, a.prediction_id, a.mint, a.metric_ts, a.tag,
       a.suppressed, a.url, a.idempotency_key, a.state, a.attempts, a.last_status, a.last_error,
       a.next_attempt_at, a.created_at, a.delivered_at
FROM coinfleet_alerts AS a JOIN coinfleet_models AS m ON m.id = a.model_id
WHERE a.id = $1

-- name: alert_attempts_page --
-- The first $2 logged attempts of one alert, oldest first.
SELECT attempt, url, status_code, latency_ms, error, response_excerpt, attempted_at, finished_at
FROM coinfleet_alert_attempts WHERE alert_id = $1 ORDER BY id LIMIT $2

-- name: fleet_health --
-- The numbers health reports: the xmin horizon's age, events stored and alerts pending or dead (each
-- counted up to $1).
SELECT (SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8
        FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AS horizon_age_seconds,
       (SELECT count(*) FROM (SELECT FROM coinfleet_events LIMIT $1) AS capped) AS events_stored,
       (SELECT count(*) FROM (SELECT FROM coinfleet_alerts WHERE state = 'pending' LIMIT $1) AS capped)
           AS alerts_pending,
       (SELECT count(*) FROM (SELECT FROM coinfleet_alerts WHERE state = 'dead' LIMIT $1) AS capped)
           AS alerts_dead

-- name: ping --
-- Whether the database answers.
SELECT 1

-- name: statistics --
-- Per model (the one named $2, NULL: every model that is not deleted): predictions by tag, evaluation
-- state, results by both rules, alert gains (count, sum, and per 0.1-point bin: bin gain_bins[i] held
-- gain_counts[i] gains summing to gain_totals[i]), for predictions made at or after $1 (NULL: all).
-- Sums the model's hourly rollup (the hours from $1 on) and its predictions the rollup does not hold:
-- those above its `through_id` (the live tail) and, when $1 falls inside an hour, that hour's from $1 on.
WITH chosen AS (
    SELECT m.id, m.name, m.status, coalesce(r.through_id, 0) AS through_id
    FROM coinfleet_models AS m
    LEFT JOIN coinfleet_stats_rolled AS r ON r.model_id = m.id
    WHERE m.status <> 'deleted' AND ($2::text IS NULL OR m.name = $2::text)
), window_hours AS (  -- $1 rounded up to an hour: rollup hours from there on lie wholly in the window
    SELECT CASE WHEN date_trunc('hour', $1::timestamptz, 'UTC') = $1::timestamptz THEN $1::timestamptz
                ELSE date_trunc('hour', $1::timestamptz, 'UTC') + interval '1 hour' END AS first_hour
), unrolled AS (
    SELECT u.*
    FROM chosen AS c
    CROSS JOIN LATERAL (
        SELECT f.* FROM coinfleet_prediction_facts AS f
        WHERE f.model_id = c.id AND f.id > c.through_id
          AND ($1::timestamptz IS NULL OR f.metric_ts >= $1::timestamptz)
        UNION ALL
        SELECT f.* FROM coinfleet_prediction_facts AS f  -- through the block-range index on metric time
        WHERE $1::timestamptz IS NOT NULL AND f.model_id + 0 = c.id AND f.id + 0 <= c.through_id
          AND f.metric_ts >= $1::timestamptz
          AND f.metric_ts < CASE WHEN date_trunc('hour', $1::timestamptz, 'UTC') = $1::timestamptz
                                 THEN $1::timestamptz
                                 ELSE date_trunc('hour', $1::timestamptz, 'UTC') + interval '1 hour' END
    ) AS u
), parts AS (
    SELECT model_id, count(*) AS predictions, sum(negative) AS negative, sum(positive) AS positive,
           sum(alert) AS alert, sum(evaluated) AS evaluated, sum(pending) AS pending, sum(ok) AS ok,
           sum(no_data) AS no_data, sum(invalid_price) AS invalid_price,
           sum(horizon_success) AS horizon_success, sum(horizon_failed) AS horizon_failed,
           sum(within_success) AS within_success, sum(within_failed) AS within_failed,
           sum(alerts_judged_at_horizon) AS alerts_judged_at_horizon,
           sum(alerts_reached_at_horizon) AS alerts_reached_at_horizon,
           sum(alerts_judged_within) AS alerts_judged_within, sum(alerts_hit_within) AS alerts_hit_within,
           count(alert_gain) AS alert_gains, sum(alert_gain) AS alert_gain_sum
    FROM unrolled GROUP BY model_id
    UNION ALL
    SELECT r.model_id, sum(r.predictions), sum(r.negative), sum(r.positive), sum(r.alert),
           sum(r.evaluated), sum(r.pending), sum(r.ok), sum(r.no_data), sum(r.invalid_price),
           sum(r.horizon_success), sum(r.horizon_failed), sum(r.within_success), sum(r.within_failed),
           sum(r.alerts_judged_at_horizon), sum(r.alerts_reached_at_horizon), sum(r.alerts_judged_within),
           sum(r.alerts_hit_within), sum(r.alert_gains), sum(r.alert_gain_sum)
    FROM coinfleet_stats_rollup AS r
    JOIN chosen AS c ON c.id = r.model_id
    CROSS JOIN window_hours AS w
    WHERE $1::timestamptz IS NULL OR r.hour >= w.first_hour
    GROUP BY r.model_id
), bins AS (
    SELECT b.model_id, array_agg(b.bin ORDER BY b.bin) AS bins, array_agg(b.n ORDER BY b.bin) AS counts,
           array_agg(b.total ORDER BY b.bin) AS totals
    FROM (
        SELECT model_id, bin, sum(n)::int8 AS n, sum(total)::float8 AS total
        FROM (
            SELECT model_id, coinfleet_gain_bin(alert_gain) AS bin, count(*) AS n, sum(alert_gain) AS total
            FROM unrolled WHERE alert_gain IS NOT NULL GROUP BY 1, 2
            UNION ALL
            SELECT g.model_id, g.bin, sum(g.n), sum(g.total)
            FROM coinfleet_stats_gain_bins AS g
            JOIN chosen AS c ON c.id = g.model_id
            CROSS JOIN window_hours AS w
            WHERE $1::timestamptz IS NULL OR g.hour >= w.first_hour
            GROUP BY 1, 2
        ) AS both_bins
        GROUP BY model_id, bin
    ) AS b
    GROUP BY b.model_id
)
SELECT c.id, c.name, c.status,
       coalesce(sum(p.predictions), 0)::int8 AS predictions,
       coalesce(sum(p.negative), 0)::int8 AS negative,
       coalesce(sum(p.positive), 0)::int8 AS positive,
       coalesce(sum(p.alert), 0)::int8 AS alert,
       coalesce(sum(p.evaluated), 0)::int8 AS evaluated,
       coalesce(sum(p.pending), 0)::int8 AS pending,
       coalesce(sum(p.ok), 0)::int8 AS ok,
       coalesce(sum(p.no_data), 0)::int8 AS no_data,
       coalesce(sum(p.invalid_price), 0)::int8 AS invalid_price,
       coalesce(sum(p.horizon_success), 0)::int8 AS horizon_success,
       coalesce(sum(p.horizon_failed), 0)::int8 AS horizon_failed,
       coalesce(sum(p.within_success), 0)::int8 AS within_success,
       coalesce(sum(p.within_failed), 0)::int8 AS within_failed,
       coalesce(sum(p.alerts_judged_at_horizon), 0)::int8 AS alerts_judged_at_horizon,
       coalesce(sum(p.alerts_reached_at_horizon), 0)::int8 AS alerts_reached_at_horizon,
       coalesce(sum(p.alerts_judged_within), 0)::int8 AS alerts_judged_within,
       coalesce(sum(p.alerts_hit_within), 0)::int8 AS alerts_hit_within,
       coalesce(sum(p.alert_gains), 0)::int8 AS alert_gains,
       sum(p.alert_gain_sum)::float8 AS alert_gain_sum,
       min(b.bins) AS gain_bins, min(b.counts) AS gain_counts, min(b.totals) AS gain_totals
FROM chosen AS c
LEFT JOIN parts AS p ON p.model_id = c.id
LEFT JOIN bins AS b ON b.model_id = c.id
GROUP BY c.id, c.name, c.status
ORDER BY c.id

