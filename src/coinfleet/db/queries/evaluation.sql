-- name: data_clock --
-- The newest metric time of any coin: evaluation's notion of "now" (data time, so replays work). Rows
-- dated more than $1 seconds ahead of the wall clock (and 'infinity') are not a clock.
SELECT max("timestamp") FROM coin_metrics WHERE "timestamp" <= now() + make_interval(secs => $1)

-- name: models_with_due --
-- Models with at least one open prediction whose horizon has ended by the clock $1, with their weight
-- ($2 when their settings name none).
SELECT m.id, m.name, coalesce((m.settings ->> 'weight')::float8, $2::float8) AS weight
FROM coinfleet_models AS m
WHERE EXISTS (
    SELECT 1 FROM coinfleet_open_predictions AS o WHERE o.model_id = m.id AND o.evaluate_at <= $1
)
ORDER BY m.id

-- name: evaluate_due --
-- Claim up to $2 due predictions of model $1 (SKIP LOCKED), judge them set-based (as of the horizon
-- end, coinfleet.evaluation.outcomes), store, unqueue.
-- $3 is the clock, $4 the grace period in seconds (docs/evaluation.md); only ids that are $6 modulo $5
-- (a model's quota split over connections: parts that do not skip each other's locked rows).
WITH due AS (
    SELECT o.*, o.ctid AS row_id, coalesce(o.p0 > 0 AND o.p0 < 'Infinity'::float8, false) AS valid,
           o.evaluate_at + make_interval(secs => $4) AS deadline
    FROM coinfleet_open_predictions AS o
    WHERE o.model_id = $1
      AND o.evaluate_at <= $3
      AND o.prediction_id % $5 = $6
      AND (NOT coalesce(o.p0 > 0 AND o.p0 < 'Infinity'::float8, false)
           OR o.evaluate_at + make_interval(secs => $4) < $3
           OR EXISTS (SELECT 1 FROM coin_metrics AS m
                      WHERE m.mint = o.mint AND m."timestamp" >= o.evaluate_at
                        AND m."timestamp" <= o.evaluate_at + make_interval(secs => $4)))
    ORDER BY o.evaluate_at, o.prediction_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), seen AS (
    SELECT d.prediction_id, d.model_id, d.prediction, d.p0, d.kind, d.direction, d.operator, d.value,
           d.valid, d.change_percent, h.ts AS horizon_ts, h.close AS horizon_close, h.var AS horizon_var,
           w.max_arr, w.min_arr, w.finite, w.hit_at, coalesce(f.alive, false) AS alive
    FROM due AS d
    LEFT JOIN LATERAL (
        -- the feed was alive after the end: some row of any coin in [end, end + grace]
        SELECT true AS alive FROM coin_metrics AS m
        WHERE m."timestamp" >= d.evaluate_at AND m."timestamp" <= d.deadline
        LIMIT 1
    ) AS f ON d.valid
    LEFT JOIN LATERAL (
        -- as of the horizon end: the coin's last row in [t0, end] (its price until the next trade)
        SELECT m."timestamp" AS ts, nullif(m.price_close, 'NaN'::float8) AS close,
               CASE WHEN d.kind = 'classic' THEN coinfleet_metric_value(m, d.variable) END AS var
        FROM coin_metrics AS m
        WHERE d.valid AND m.mint = d.mint AND m."timestamp" >= d.metric_ts AND m."timestamp" <= d.evaluate_at
        ORDER BY m."timestamp" DESC LIMIT 1
    ) AS h ON d.valid
    LEFT JOIN LATERAL (
        SELECT max(ARRAY[m.price_high, -date_part('epoch', m."timestamp")])
                   FILTER (WHERE m.price_high IS NOT NULL AND m.price_high <> 'NaN'::float8) AS max_arr,
               min(ARRAY[m.price_low, date_part('epoch', m."timestamp")])
                   FILTER (WHERE m.price_low IS NOT NULL AND m.price_low <> 'NaN'::float8) AS min_arr,
               bool_or(m.price_high > '-Infinity'::float8 AND m.price_high < 'Infinity'::float8)
                   AND bool_or(m.price_low > '-Infinity'::float8 AND m.price_low < 'Infinity'::float8)
                   AS finite,
               min(m."timestamp") FILTER (WHERE CASE
                   WHEN d.kind = 'classic'
                       THEN coinfleet_classic_holds(coinfleet_metric_value(m, d.variable), d.operator, d.value)
                   WHEN d.direction = 'up'
                       THEN coinfleet_change_pct(m.price_high, d.p0) >= coalesce(d.change_percent, 0) - 1e-9
                   ELSE coinfleet_change_pct(m.price_low, d.p0) <= -coalesce(d.change_percent, 0) + 1e-9
               END) AS hit_at
        FROM coin_metrics AS m
        WHERE d.valid AND m.mint = d.mint AND m."timestamp" > d.metric_ts AND m."timestamp" <= d.evaluate_at
    ) AS w ON d.valid
), changed AS (
    SELECT s.*,
           CASE WHEN NOT s.valid THEN 'invalid_price'
                WHEN s.horizon_ts IS NULL OR NOT s.alive THEN 'no_data' ELSE 'ok' END AS status,
           CASE WHEN s.alive THEN s.horizon_ts END AS observed_at,
           CASE WHEN s.alive AND s.horizon_ts IS NOT NULL THEN coinfleet_change_pct(s.horizon_close, s.p0) END
               AS change
    FROM seen AS s
), judged AS (
    SELECT c.*,
           CASE
               WHEN c.status <> 'ok' THEN NULL
               WHEN c.kind = 'classic' THEN CASE WHEN c.horizon_var IS NULL OR c.horizon_var = 'NaN'::float8
                   THEN NULL ELSE coinfleet_classic_holds(c.horizon_var, c.operator, c.value) END
               WHEN c.direction = 'up' THEN c.change >= coalesce(c.change_percent, 0) - 1e-9
               ELSE c.change <= -coalesce(c.change_percent, 0) + 1e-9
           END AS reached,
           CASE WHEN c.valid THEN c.hit_at IS NOT NULL END AS hit
    FROM changed AS c
), unqueued AS (
    -- by row address: a TID scan, where a join would scan the whole queue
    DELETE FROM coinfleet_open_predictions AS o WHERE o.ctid = ANY (ARRAY(SELECT d.row_id FROM due AS d))
), stored AS (
    INSERT INTO coinfleet_evaluations
        (prediction_id, model_id, status, price_at_prediction, price_at_horizon, horizon_observed_at,
         change_at_horizon_pct, reached_at_horizon, hit_within, hit_at, max_change_pct, max_change_at,
         min_change_pct, min_change_at, result_at_horizon, result_within, grace_seconds)
    SELECT j.prediction_id, j.model_id, j.status, j.p0, CASE WHEN j.status = 'ok' THEN j.horizon_close END,
           j.observed_at, j.change, j.reached,
           j.hit, j.hit_at,
           CASE WHEN j.finite THEN coinfleet_change_pct(j.max_arr[1], j.p0) END,
           CASE WHEN j.finite THEN to_timestamp(-j.max_arr[2]) END,
           CASE WHEN j.finite THEN coinfleet_change_pct(j.min_arr[1], j.p0) END,
           CASE WHEN j.finite THEN to_timestamp(j.min_arr[2]) END,
           CASE WHEN j.status <> 'ok' OR j.reached IS NULL THEN 'not_applicable'
                WHEN j.reached = (j.prediction = 1) THEN 'success' ELSE 'failed' END,
           CASE WHEN j.status <> 'ok' THEN 'not_applicable'
                WHEN j.hit = (j.prediction = 1) THEN 'success' ELSE 'failed' END,
           $4
    FROM judged AS j
    -- already judged: a tracker's update that committed between this statement's snapshot and its lock
    -- moved the open row, so the DELETE by address above missed it once; the stored outcome stands and
    -- the row goes now, instead of failing this part of the model's queue in every round from then on
    ON CONFLICT (prediction_id) DO NOTHING
)
SELECT j.prediction_id FROM judged AS j

-- name: track_open --
-- Move the running ATH/min of every open prediction whose horizon is still running forward over the
-- rows that arrived since its last update (rows before the clock $1 only; SKIP LOCKED).
WITH todo AS (
    SELECT o.prediction_id, o.mint, o.p0, coalesce(o.tracked_until, o.metric_ts) AS since,
           least(o.evaluate_at, $1) AS upto
    FROM coinfleet_open_predictions AS o
    WHERE o.evaluate_at > $1
      AND o.p0 > 0 AND o.p0 < 'Infinity'::float8
      AND coalesce(o.tracked_until, o.metric_ts) < least(o.evaluate_at, $1)
    FOR UPDATE SKIP LOCKED
), seen AS (
    SELECT t.prediction_id, t.p0, w.last_ts, w.max_arr, w.min_arr
    FROM todo AS t
    JOIN LATERAL (
        SELECT max(m."timestamp") AS last_ts,
               max(ARRAY[m.price_high, -date_part('epoch', m."timestamp")])
                   FILTER (WHERE m.price_high IS NOT NULL AND m.price_high <> 'NaN'::float8) AS max_arr,
               min(ARRAY[m.price_low, date_part('epoch', m."timestamp")])
                   FILTER (WHERE m.price_low IS NOT NULL AND m.price_low <> 'NaN'::float8) AS min_arr
        FROM coin_metrics AS m
        WHERE m.mint = t.mint AND m."timestamp" > t.since AND m."timestamp" <= t.upto
          AND m."timestamp" < $1
    ) AS w ON w.last_ts IS NOT NULL
), moved AS (
    SELECT s.prediction_id, s.last_ts,
           coinfleet_change_pct(s.max_arr[1], s.p0) AS max_pct, to_timestamp(-s.max_arr[2]) AS max_at,
           coinfleet_change_pct(s.min_arr[1], s.p0) AS min_pct, to_timestamp(s.min_arr[2]) AS min_at
    FROM seen AS s
)
UPDATE coinfleet_open_predictions AS o SET
    tracked_until = v.last_ts,
    max_change_pct = CASE WHEN o.max_change_pct IS NULL OR v.max_pct > o.max_change_pct
                          THEN v.max_pct ELSE o.max_change_pct END,
    max_change_at = CASE WHEN o.max_change_pct IS NULL OR v.max_pct > o.max_change_pct
                         THEN v.max_at ELSE o.max_change_at END,
    min_change_pct = CASE WHEN o.min_change_pct IS NULL OR v.min_pct < o.min_change_pct
                          THEN v.min_pct ELSE o.min_change_pct END,
    min_change_at = CASE WHEN o.min_change_pct IS NULL OR v.min_pct < o.min_change_pct
                         THEN v.min_at ELSE o.min_change_at END
FROM moved AS v
WHERE o.prediction_id = v.prediction_id

-- name: open_tracking --
-- The live ATH/min of a model's open predictions (for reports and tests).
SELECT prediction_id, mint, metric_ts, evaluate_at, tracked_until, max_change_pct, max_change_at,
       min_change_pct, min_change_at
FROM coinfleet_open_predictions WHERE model_id = $1 ORDER BY prediction_id

-- name: evaluations_of_model --
-- Every stored outcome of one model with its prediction, in prediction order.
SELECT p.id AS prediction_id, p.mint, p.metric_ts, p.evaluate_at, p.probability, p.prediction, p.tag,
       e.status, e.price_at_prediction, e.price_at_horizon, e.horizon_observed_at, e.change_at_horizon_pct,
       e.reached_at_horizon, e.hit_within, e.hit_at, e.max_change_pct, e.max_change_at,
       e.min_change_pct, e.min_change_at, e.result_at_horizon, e.result_within
FROM coinfleet_evaluations AS e
JOIN coinfleet_predictions AS p ON p.id = e.prediction_id
WHERE e.model_id = $1
ORDER BY p.metric_ts, p.mint

-- name: bench_insert_model --
-- Register a placeholder model for the evaluation benchmark (never scored, only evaluated).
INSERT INTO coinfleet_models (name, algorithm, format, artifact, artifact_sha256, features, target, settings)
VALUES ($1, 'none', 'none', '\x00'::bytea, 'bench', '{}', $2::jsonb, '{}')
RETURNING id

-- name: bench_insert_metrics --
-- $1 coins with one bar every $3 seconds for $2 bars from $4, prices on a gentle deterministic wave.
INSERT INTO coin_metrics (mint, "timestamp", price_open, price_high, price_low, price_close)
SELECT 'bench-' || c, $4::timestamptz + make_interval(secs => b * $3),
       1e-8 * (1 + 0.05 * sin(b + c)), 1e-8 * (1.04 + 0.05 * sin(b + c)), 1e-8 * (0.97 + 0.05 * sin(b + c)),
       1e-8 * (1 + 0.05 * sin(b + c + 1))
FROM generate_series(1, $1) AS c, generate_series(0, $2 - 1) AS b

-- name: bench_insert_predictions --
-- $2 predictions of model $1 spread over $3 coins and the first $4 bars ($5 s apart from $6).
INSERT INTO coinfleet_predictions
    (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
     evaluate_at, price_close, event_tx, event_seq)
SELECT $1, 1, 'bench-' || (1 + i % $3), ts, 0.8, 1, 'alert', 0.7, t.target,
       ts + make_interval(secs => (t.target ->> 'horizon_seconds')::float8),
       1e-8 * (1 + 0.05 * sin(i / $3 + 1 + i % $3)), '1'::xid8, i
FROM generate_series(0, $2 - 1) AS i,
     LATERAL (SELECT $6::timestamptz + make_interval(secs => (i / $3) % $4 * $5) AS ts) AS s,
     (SELECT target FROM coinfleet_models WHERE id = $1) AS t

-- name: bench_analyze --
-- Refresh planner statistics after the benchmark's bulk inserts.
ANALYZE coin_metrics, coinfleet_predictions, coinfleet_open_predictions

-- name: prediction_outcomes --
-- Every prediction with its outcome (NULLs while pending), times as seconds after the first metric
-- row, so two runs of the same data shifted in time compare row for row.
WITH origin AS (SELECT min("timestamp") AS t FROM coin_metrics)
SELECT m.name AS model, p.mint, extract(epoch FROM p.metric_ts - origin.t)::float8 AS at,
       p.probability, p.prediction, p.tag, e.status, e.price_at_prediction, e.price_at_horizon,
       extract(epoch FROM e.horizon_observed_at - origin.t)::float8 AS horizon_observed_at,
       e.change_at_horizon_pct, e.reached_at_horizon, e.hit_within,
       extract(epoch FROM e.hit_at - origin.t)::float8 AS hit_at, e.max_change_pct,
       extract(epoch FROM e.max_change_at - origin.t)::float8 AS max_change_at, e.min_change_pct,
       extract(epoch FROM e.min_change_at - origin.t)::float8 AS min_change_at,
       e.result_at_horizon, e.result_within
FROM coinfleet_predictions AS p
JOIN coinfleet_models AS m ON m.id = p.model_id
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
CROSS JOIN origin
ORDER BY m.name, p.metric_ts, p.mint

-- name: active_models_behind --
-- How many active models have stored events after their committed cursor (0: every lane caught up).
SELECT count(*) FROM coinfleet_models AS m
LEFT JOIN coinfleet_cursors AS c ON c.model_id = m.id
WHERE m.status = 'active'
  AND (c.model_id IS NULL
       OR EXISTS (SELECT 1 FROM coinfleet_events AS e WHERE (e.tx, e.seq) > (c.tx, c.seq)))
