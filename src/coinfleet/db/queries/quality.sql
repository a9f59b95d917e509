-- name: calibration_sums --
-- Per model and probability bucket ($3 equal-width buckets over [0, 1]): count, Σp, Σlabel and
-- Σ(p − label)² of the judged ('ok') predictions made at or after $1 (NULL: all) of the model named $2
-- (NULL: every model). The label is the one the model was trained on: its training metrics' label_mode
-- ('at_horizon': reached at the horizon end; anything else: hit within the horizon). `validation` is the
-- same on the model's validation split as training stored it (JSON text; NULL when not trained here).
SELECT m.id AS model_id, m.name, m.training_metrics -> 'calibration' AS validation,
       least(floor(p.probability * $3)::int, $3 - 1) AS bucket, count(*) AS count,
       sum(p.probability) AS sum_probability, sum(l.label) AS sum_label,
       sum((p.probability - l.label) ^ 2) AS sum_squared_error
FROM coinfleet_models AS m
JOIN coinfleet_predictions AS p
  ON p.model_id = m.id AND ($1::timestamptz IS NULL OR p.metric_ts >= $1::timestamptz)
JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id AND e.status = 'ok'
CROSS JOIN LATERAL (
    SELECT (CASE WHEN m.training_metrics ->> 'label_mode' = 'at_horizon' THEN e.reached_at_horizon
                 ELSE e.hit_within END)::int::float8 AS label
) AS l
WHERE m.status <> 'deleted' AND ($2::text IS NULL OR m.name = $2::text) AND l.label IS NOT NULL
GROUP BY m.id, m.name, 4
ORDER BY m.id, 4

-- name: drift_models --
-- Models (the one named $1, NULL: every model not deleted; with status $2 when given) with their
-- features and the training distribution stored with them (NULL when not trained by coinfleet).
SELECT id, name, features, training_metrics -> 'drift_reference' AS reference
FROM coinfleet_models
WHERE status <> 'deleted' AND ($1::text IS NULL OR name = $1::text) AND ($2::text IS NULL OR status = $2::text)
ORDER BY id

-- name: recent_scored --
-- The newest $3 predictions of model $1 made in the $2 seconds up to its newest one (data time).
SELECT p.mint, p.metric_ts
FROM coinfleet_predictions AS p
WHERE p.model_id = $1
  AND p.metric_ts >= (SELECT max(metric_ts) FROM coinfleet_predictions WHERE model_id = $1)
                     - make_interval(secs => $2)
ORDER BY p.metric_ts DESC
LIMIT $3

-- name: feature_rows --
-- What the features at (coin $1[i], time $2[i]) read: per coin, the $3 rows before its earliest
-- wanted time and every row from there to its latest, with the coin's first time ever; oldest first.
WITH wanted AS (
    SELECT u.mint, min(u.ts) AS first_ts, max(u.ts) AS last_ts
    FROM unnest($1::text[], $2::timestamptz[]) AS u(mint, ts)
    GROUP BY u.mint
)
SELECT f.first_seen, r.*
FROM wanted AS w
CROSS JOIN LATERAL (SELECT min(c."timestamp") AS first_seen FROM coin_metrics AS c WHERE c.mint = w.mint) AS f
CROSS JOIN LATERAL (
    (SELECT c.* FROM coin_metrics AS c
     WHERE c.mint = w.mint AND c."timestamp" < w.first_ts ORDER BY c."timestamp" DESC LIMIT $3)
    UNION ALL
    (SELECT c.* FROM coin_metrics AS c
     WHERE c.mint = w.mint AND c."timestamp" >= w.first_ts AND c."timestamp" <= w.last_ts)
) AS r
ORDER BY r.mint, r."timestamp"

-- name: model_coverage --
-- Per model: predictions whose horizon ended by the clock $1 and how many of them are judged ('ok'),
-- no_data, invalid_price or still pending; and predictions whose horizon runs past the clock.
SELECT m.id AS model_id, m.name,
       count(p.id) FILTER (WHERE p.evaluate_at <= $1) AS ended,
       count(e.prediction_id) FILTER (WHERE p.evaluate_at <= $1 AND e.status = 'ok') AS judged,
       count(e.prediction_id) FILTER (WHERE p.evaluate_at <= $1 AND e.status = 'no_data') AS no_data,
       count(e.prediction_id) FILTER (WHERE p.evaluate_at <= $1 AND e.status = 'invalid_price') AS invalid_price,
       count(p.id) FILTER (WHERE p.evaluate_at <= $1 AND e.prediction_id IS NULL) AS pending,
       count(p.id) FILTER (WHERE p.evaluate_at > $1) AS running
FROM coinfleet_models AS m
JOIN coinfleet_predictions AS p ON p.model_id = m.id
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
WHERE m.status <> 'deleted'
GROUP BY m.id, m.name
ORDER BY m.id

-- name: rule_comparison --
-- Per model, over outcomes judged as of the horizon end: hit rates and alert precision by the stored
-- rule beside those of the former rule (price = the coin's FIRST row in [end, end + grace], no_data
-- without one), recomputed from coin_metrics; the within-horizon hit is the same under both.
WITH judged AS (
    SELECT e.model_id, e.status, e.reached_at_horizon, e.hit_within, p.prediction, p.tag, p.price_close AS p0,
           coalesce(p.target ->> 'kind', 'change') AS kind, p.target ->> 'direction' AS direction,
           coalesce((p.target -> 'change_percent')::float8, 0) AS change_percent,
           p.target ->> 'operator' AS operator, (p.target -> 'value')::float8 AS value,
           f.ts AS first_ts, f.close AS first_close, f.var AS first_var
    FROM coinfleet_evaluations AS e
    JOIN coinfleet_predictions AS p ON p.id = e.prediction_id
    LEFT JOIN LATERAL (
        SELECT m."timestamp" AS ts, nullif(m.price_close, 'NaN'::float8) AS close,
               coinfleet_metric_value(m, p.target ->> 'variable') AS var
        FROM coin_metrics AS m
        WHERE m.mint = p.mint AND m."timestamp" >= p.evaluate_at
          AND m."timestamp" <= p.evaluate_at + make_interval(secs => e.grace_seconds)
        ORDER BY m."timestamp" LIMIT 1
    ) AS f ON e.status <> 'invalid_price'
    WHERE e.rule = 'as_of'
), former AS (
    SELECT j.*, j.first_ts IS NOT NULL AS first_ok,
           CASE WHEN j.first_ts IS NULL THEN NULL
                WHEN j.kind = 'classic' THEN CASE WHEN j.first_var IS NULL OR j.first_var = 'NaN'::float8
                    THEN NULL ELSE coinfleet_classic_holds(j.first_var, j.operator, j.value) END
                WHEN j.direction = 'up'
                    THEN coinfleet_change_pct(j.first_close, j.p0) >= j.change_percent - 1e-9
                ELSE coinfleet_change_pct(j.first_close, j.p0) <= -j.change_percent + 1e-9
           END AS first_reached
    FROM judged AS j
)
SELECT m.id, m.name,
       count(*) FILTER (WHERE f.status = 'ok') AS judged,
       count(*) FILTER (WHERE f.first_ok) AS judged_former,
       count(*) FILTER (WHERE f.reached_at_horizon = (f.prediction = 1)) AS horizon_success,
       count(*) FILTER (WHERE f.reached_at_horizon IS NOT NULL) AS horizon_judged,
       count(*) FILTER (WHERE f.first_reached = (f.prediction = 1)) AS horizon_success_former,
       count(*) FILTER (WHERE f.first_reached IS NOT NULL) AS horizon_judged_former,
       count(*) FILTER (WHERE f.status = 'ok' AND f.hit_within = (f.prediction = 1)) AS within_success,
       count(*) FILTER (WHERE f.first_ok AND f.hit_within = (f.prediction = 1)) AS within_success_former,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.reached_at_horizon) AS alerts_reached,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.reached_at_horizon IS NOT NULL) AS alerts_judged,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.first_reached) AS alerts_reached_former,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.first_reached IS NOT NULL) AS alerts_judged_former,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.status = 'ok' AND f.hit_within) AS alerts_hit,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.status = 'ok') AS alerts_ok,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.first_ok AND f.hit_within) AS alerts_hit_former,
       count(*) FILTER (WHERE f.tag = 'alert' AND f.first_ok) AS alerts_ok_former
FROM former AS f
JOIN coinfleet_models AS m ON m.id = f.model_id
GROUP BY m.id, m.name
ORDER BY m.id

-- name: calibration_sums_rolled --
-- calibration_sums for 10 buckets, read like `statistics` (db/queries/service.sql): each model's hourly
-- calibration rollup (the hours from $1 on) plus its predictions the rollup does not hold (above its
-- `through_id`, and when $1 falls inside an hour, that hour's from $1 on). Same columns.
WITH chosen AS (
    SELECT m.id, m.name, m.training_metrics -> 'calibration' AS validation,
           m.training_metrics ->> 'label_mode' = 'at_horizon' AS at_horizon,
           coalesce(r.through_id, 0) AS through_id
    FROM coinfleet_models AS m
    LEFT JOIN coinfleet_stats_rolled AS r ON r.model_id = m.id
    WHERE m.status <> 'deleted' AND ($2::text IS NULL OR m.name = $2::text)
), first_hour AS (  -- $1 rounded up to an hour: rollup hours from there on lie wholly in the window
    SELECT CASE WHEN date_trunc('hour', $1::timestamptz, 'UTC') = $1::timestamptz THEN $1::timestamptz
                ELSE date_trunc('hour', $1::timestamptz, 'UTC') + interval '1 hour' END AS at
), unrolled AS (
    SELECT c.id AS model_id, u.probability,
           (CASE WHEN c.at_horizon THEN u.label_at_horizon ELSE u.label_within END)::float8 AS label
    FROM chosen AS c
    CROSS JOIN LATERAL (
        SELECT f.probability, f.label_at_horizon, f.label_within FROM coinfleet_prediction_facts AS f
        WHERE f.model_id = c.id AND f.id > c.through_id
          AND ($1::timestamptz IS NULL OR f.metric_ts >= $1::timestamptz)
        UNION ALL
        SELECT f.probability, f.label_at_horizon, f.label_within FROM coinfleet_prediction_facts AS f
        WHERE $1::timestamptz IS NOT NULL AND f.model_id + 0 = c.id AND f.id + 0 <= c.through_id
          AND f.metric_ts >= $1::timestamptz
          AND f.metric_ts < CASE WHEN date_trunc('hour', $1::timestamptz, 'UTC') = $1::timestamptz
                                 THEN $1::timestamptz
                                 ELSE date_trunc('hour', $1::timestamptz, 'UTC') + interval '1 hour' END
    ) AS u
), parts AS (
    SELECT model_id, least(floor(probability * 10)::int, 9) AS bucket, count(*) AS count,
           sum(probability) AS sum_probability, sum(label) AS sum_label,
           sum((probability - label) ^ 2) AS sum_squared_error
    FROM unrolled WHERE label IS NOT NULL GROUP BY 1, 2
    UNION ALL
    SELECT k.model_id, k.bucket,
           sum(CASE WHEN c.at_horizon THEN k.horizon_count ELSE k.within_count END),
           sum(CASE WHEN c.at_horizon THEN k.horizon_sum_p ELSE k.within_sum_p END),
           sum(CASE WHEN c.at_horizon THEN k.horizon_sum_label ELSE k.within_sum_label END),
           sum(CASE WHEN c.at_horizon THEN k.horizon_sum_se ELSE k.within_sum_se END)
    FROM coinfleet_stats_calibration AS k
    JOIN chosen AS c ON c.id = k.model_id
    CROSS JOIN first_hour AS w
    WHERE $1::timestamptz IS NULL OR k.hour >= w.at
    GROUP BY 1, 2
)
SELECT c.id AS model_id, c.name, c.validation, p.bucket, sum(p.count)::int8 AS count,
       sum(p.sum_probability)::float8 AS sum_probability, sum(p.sum_label)::float8 AS sum_label,
       sum(p.sum_squared_error)::float8 AS sum_squared_error
FROM chosen AS c
JOIN parts AS p ON p.model_id = c.id
GROUP BY c.id, c.name, c.validation, p.bucket
HAVING sum(p.count) > 0
ORDER BY c.id, p.bucket
