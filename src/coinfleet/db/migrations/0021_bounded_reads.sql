-- Reads that stay bounded at millions of stored predictions per model (docs/decisions.md, "Bounded reads").
--
-- A model's predictions newest first: the prediction log filtered by model walked the primary key
-- backwards and skipped every other model's rows (16.7 s at 20M rows for a filter that matched few); the
-- statistics charts did the same. With (model_id, id) a model's page walks its own rows only. Ids only
-- grow, so each model's inserts append at the right edge of its part of the index. Built inside the
-- migration's transaction: on a large table, storing predictions waits for the build.
CREATE INDEX coinfleet_predictions_model_id_idx ON coinfleet_predictions (model_id, id);

-- A model's statistics without reading its whole history: per model and hour of metric time (UTC), the
-- sums the statistics add up (all additive), for the model's predictions up to `through_id` in
-- coinfleet_stats_rolled. Rows are added only once every prediction up to there is judged, so a rolled
-- row never changes; statistics read the rollup plus the model's predictions above `through_id` (the
-- live tail) and, for a window starting inside an hour, that hour's rows. The evaluation loop advances
-- the rollup (coinfleet.evaluation.rollups). The median alert gain is not additive: alert gains are
-- counted in bins of 0.1 percentage point with their sum, and the median is read from the bins: each value
-- taken as its bin's mean, so within 0.1 points (exact when the middle bins hold one value each).
CREATE TABLE coinfleet_stats_rollup (
    model_id                  integer          NOT NULL,
    hour                      timestamptz      NOT NULL,
    predictions               bigint           NOT NULL,
    negative                  bigint           NOT NULL,
    positive                  bigint           NOT NULL,
    alert                     bigint           NOT NULL,
    evaluated                 bigint           NOT NULL,
    pending                   bigint           NOT NULL,
    ok                        bigint           NOT NULL,
    no_data                   bigint           NOT NULL,
    invalid_price             bigint           NOT NULL,
    horizon_success           bigint           NOT NULL,
    horizon_failed            bigint           NOT NULL,
    within_success            bigint           NOT NULL,
    within_failed             bigint           NOT NULL,
    alerts_judged_at_horizon  bigint           NOT NULL,
    alerts_reached_at_horizon bigint           NOT NULL,
    alerts_judged_within      bigint           NOT NULL,
    alerts_hit_within         bigint           NOT NULL,
    alert_gains               bigint           NOT NULL,
    alert_gain_sum            double precision NOT NULL,
    PRIMARY KEY (model_id, hour)
);

-- Alert gains per model, hour and bin (bin b holds gains in [b / 10, (b + 1) / 10) %): how many and their sum.
CREATE TABLE coinfleet_stats_gain_bins (
    model_id integer          NOT NULL,
    hour     timestamptz      NOT NULL,
    bin      bigint           NOT NULL,
    n        bigint           NOT NULL,
    total    double precision NOT NULL,
    PRIMARY KEY (model_id, hour, bin)
);

-- Calibration sums per model, hour and probability bucket (10 equal-width buckets, the default of
-- `coinfleet stats` and the UI), for both labels a model may be trained on: judged predictions with the
-- label known, their probabilities, labels and squared errors.
CREATE TABLE coinfleet_stats_calibration (
    model_id          integer          NOT NULL,
    hour              timestamptz      NOT NULL,
    bucket            integer          NOT NULL,
    horizon_count     bigint           NOT NULL,
    horizon_sum_p     double precision NOT NULL,
    horizon_sum_label double precision NOT NULL,
    horizon_sum_se    double precision NOT NULL,
    within_count      bigint           NOT NULL,
    within_sum_p      double precision NOT NULL,
    within_sum_label  double precision NOT NULL,
    within_sum_se     double precision NOT NULL,
    PRIMARY KEY (model_id, hour, bucket)
);

-- How far each model's rollup reaches, and the next id it may reach once every transaction that was
-- running when that id was seen has ended (a stored prediction's id is taken before it commits).
CREATE TABLE coinfleet_stats_rolled (
    model_id       integer     PRIMARY KEY,
    through_id     bigint      NOT NULL DEFAULT 0,
    candidate_id   bigint,
    candidate_xmax xid8,
    candidate_at   timestamptz
);

-- What the statistics count of each prediction, as 0/1 columns (a comparison with no evaluation is 0) and its alert gain (the change at the
-- horizon in the target's direction, when judged 'ok' and finite): the one definition both the rollup
-- and the live tail are summed from.
CREATE VIEW coinfleet_prediction_facts AS
SELECT p.id, p.model_id, p.metric_ts, p.probability,
       -- the labels calibration compares the probability with, by a model's label_mode (judged 'ok' only)
       CASE WHEN e.status = 'ok' THEN e.reached_at_horizon::int END AS label_at_horizon,
       CASE WHEN e.status = 'ok' THEN e.hit_within::int END AS label_within,
       ((p.tag = 'negative') IS TRUE)::int AS negative,
       ((p.tag = 'positive') IS TRUE)::int AS positive,
       ((p.tag = 'alert') IS TRUE)::int AS alert,
       (e.prediction_id IS NOT NULL)::int AS evaluated,
       (e.prediction_id IS NULL)::int AS pending,
       ((e.status = 'ok') IS TRUE)::int AS ok,
       ((e.status = 'no_data') IS TRUE)::int AS no_data,
       ((e.status = 'invalid_price') IS TRUE)::int AS invalid_price,
       ((e.result_at_horizon = 'success') IS TRUE)::int AS horizon_success,
       ((e.result_at_horizon = 'failed') IS TRUE)::int AS horizon_failed,
       ((e.result_within = 'success') IS TRUE)::int AS within_success,
       ((e.result_within = 'failed') IS TRUE)::int AS within_failed,
       ((p.tag = 'alert' AND e.reached_at_horizon IS NOT NULL) IS TRUE)::int AS alerts_judged_at_horizon,
       ((p.tag = 'alert' AND e.reached_at_horizon) IS TRUE)::int AS alerts_reached_at_horizon,
       ((p.tag = 'alert' AND e.status = 'ok') IS TRUE)::int AS alerts_judged_within,
       ((p.tag = 'alert' AND e.status = 'ok' AND e.hit_within) IS TRUE)::int AS alerts_hit_within,
       CASE WHEN p.tag = 'alert' AND e.status = 'ok' AND e.change_at_horizon_pct IS NOT NULL
                 AND e.change_at_horizon_pct NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8)
            THEN CASE WHEN p.target ->> 'direction' = 'down' THEN -e.change_at_horizon_pct
                      ELSE e.change_at_horizon_pct END
       END AS alert_gain
FROM coinfleet_predictions AS p
-- looked up per prediction (LIMIT 1 keeps the planner from merging with every evaluation stored: the
-- view is read for a few predictions at a time, a model's live tail or a rollup step)
LEFT JOIN LATERAL (
    SELECT * FROM coinfleet_evaluations AS x WHERE x.prediction_id = p.id LIMIT 1
) AS e ON true;

-- The gain bin of an alert gain in %: 0.1-point bins, gains beyond ±1e12 % in the outermost.
CREATE FUNCTION coinfleet_gain_bin(gain double precision) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN floor(least(greatest(gain, -1e12), 1e12) * 10)::bigint;
