-- Evaluation: open predictions (the work queue, with live ATH/min tracking) and their outcomes.
-- The rules are those of coinfleet.evaluation.outcomes; docs/evaluation.md explains them.

-- One row per prediction still waiting for its outcome, with its own target snapshot as columns so
-- rounds never read the model's current settings. Rows leave when the outcome is written.
-- Neither table has a foreign key to coinfleet_predictions (predictions are never deleted): the
-- checks would cost a sixth of each evaluation and of each stored prediction batch.
CREATE TABLE coinfleet_open_predictions (
    prediction_id   bigint      PRIMARY KEY,
    model_id        integer     NOT NULL,
    mint            text        NOT NULL,
    metric_ts       timestamptz NOT NULL,
    evaluate_at     timestamptz NOT NULL,
    prediction      smallint    NOT NULL,
    p0              double precision,
    kind            text        NOT NULL,
    direction       text,
    change_percent  double precision,
    variable        text,
    operator        text,
    value           double precision,
    -- live tracking over (metric_ts, tracked_until]: highest high / lowest low vs p0, first time reached
    tracked_until   timestamptz,
    max_change_pct  double precision,
    max_change_at   timestamptz,
    min_change_pct  double precision,
    min_change_at   timestamptz
);
CREATE INDEX coinfleet_open_predictions_due_idx ON coinfleet_open_predictions (model_id, evaluate_at);
CREATE INDEX coinfleet_open_predictions_horizon_idx ON coinfleet_open_predictions (evaluate_at);

-- One row per settled prediction. status: ok | no_data | invalid_price. result_*: success | failed |
-- not_applicable, judged like the predecessor (prediction 1 succeeds when the target was reached,
-- prediction 0 when it was not) by two rules: at the horizon end, and at any time within the horizon.
CREATE TABLE coinfleet_evaluations (
    prediction_id          bigint      PRIMARY KEY,
    model_id               integer     NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('ok', 'no_data', 'invalid_price')),
    price_at_prediction    double precision,
    price_at_horizon       double precision,
    horizon_observed_at    timestamptz,
    change_at_horizon_pct  double precision,
    reached_at_horizon     boolean,
    hit_within             boolean,
    hit_at                 timestamptz,
    max_change_pct         double precision,
    max_change_at          timestamptz,
    min_change_pct         double precision,
    min_change_at          timestamptz,
    result_at_horizon      text        NOT NULL
                           CHECK (result_at_horizon IN ('success', 'failed', 'not_applicable')),
    result_within          text        NOT NULL
                           CHECK (result_within IN ('success', 'failed', 'not_applicable')),
    grace_seconds          double precision NOT NULL,
    evaluated_at           timestamptz NOT NULL DEFAULT now()
);

-- % change of `price` vs `p0` (NULL unless p0 > 0 and finite) exactly as numpy computes (price / p0 - 1) * 100; NaN
-- gives NULL, and ratios float8 cannot hold give ±Infinity or -100 instead of an overflow error, so
-- one absurd row never fails a whole round.
CREATE FUNCTION coinfleet_change_pct(price double precision, p0 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN price IS NULL OR price = 'NaN'::float8 OR NOT (p0 > 0 AND p0 < 'Infinity'::float8) THEN NULL
        WHEN abs(price) < 1e150 AND (price = 0 OR abs(price) > 1e-150) AND p0 > 1e-150 AND p0 < 1e150
            THEN (price / p0 - 1) * 100
        WHEN price = 'Infinity'::float8 OR price = '-Infinity'::float8 THEN price
        WHEN ln(abs(price)) - ln(p0) > 700 THEN sign(price) * 'Infinity'::float8
        WHEN ln(abs(price)) - ln(p0) < -700 THEN -100
        ELSE (price / p0 - 1) * 100
    END
$$;

-- Whether a classic target `v operator value` holds; NULL/NaN never holds; "=" allows 1e-12 relative.
CREATE FUNCTION coinfleet_classic_holds(v double precision, operator text, value double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL OR v = 'NaN'::float8 OR value IS NULL THEN false
        WHEN operator = '>' THEN v > value
        WHEN operator = '<' THEN v < value
        WHEN operator = '>=' THEN v >= value
        WHEN operator = '<=' THEN v <= value
        ELSE abs(v - value) <= 1e-12 * greatest(abs(v), abs(value))
    END
$$;

-- The value of a classic target's variable in one coin_metrics row (no SQL built from strings).
CREATE FUNCTION coinfleet_metric_value(m coin_metrics, variable text)
RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE variable
        WHEN 'phase_id_at_time' THEN m.phase_id_at_time::float8
        WHEN 'price_open' THEN m.price_open
        WHEN 'price_high' THEN m.price_high
        WHEN 'price_low' THEN m.price_low
        WHEN 'price_close' THEN m.price_close
        WHEN 'market_cap_close' THEN m.market_cap_close
        WHEN 'volume_sol' THEN m.volume_sol
        WHEN 'buy_volume_sol' THEN m.buy_volume_sol
        WHEN 'sell_volume_sol' THEN m.sell_volume_sol
        WHEN 'num_buys' THEN m.num_buys::float8
        WHEN 'num_sells' THEN m.num_sells::float8
        WHEN 'unique_wallets' THEN m.unique_wallets::float8
        WHEN 'dev_sold_amount' THEN m.dev_sold_amount
        WHEN 'buy_pressure_ratio' THEN m.buy_pressure_ratio
        WHEN 'whale_buy_volume_sol' THEN m.whale_buy_volume_sol
        WHEN 'whale_sell_volume_sol' THEN m.whale_sell_volume_sol
        WHEN 'volatility_pct' THEN m.volatility_pct
        WHEN 'unique_signer_ratio' THEN m.unique_signer_ratio
        WHEN 'net_volume_sol' THEN m.net_volume_sol
    END
$$;

-- New predictions join the work queue in the same statement that stores them (set-based).
CREATE FUNCTION coinfleet_open_new_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coinfleet_open_predictions
        (prediction_id, model_id, mint, metric_ts, evaluate_at, prediction, p0, kind, direction,
         change_percent, variable, operator, value)
    SELECT n.id, n.model_id, n.mint, n.metric_ts, n.evaluate_at, n.prediction, n.price_close,
           coalesce(n.target ->> 'kind', 'change'), n.target ->> 'direction',
           (n.target -> 'change_percent')::float8, n.target ->> 'variable', n.target ->> 'operator',
           (n.target -> 'value')::float8
    FROM coinfleet_new_predictions AS n;
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_predictions_open
    AFTER INSERT ON coinfleet_predictions
    REFERENCING NEW TABLE AS coinfleet_new_predictions
    FOR EACH STATEMENT EXECUTE FUNCTION coinfleet_open_new_predictions();

-- Predictions stored before this migration are open too.
INSERT INTO coinfleet_open_predictions
    (prediction_id, model_id, mint, metric_ts, evaluate_at, prediction, p0, kind, direction,
     change_percent, variable, operator, value)
SELECT p.id, p.model_id, p.mint, p.metric_ts, p.evaluate_at, p.prediction, p.price_close,
       coalesce(p.target ->> 'kind', 'change'), p.target ->> 'direction',
       (p.target -> 'change_percent')::float8, p.target ->> 'variable', p.target ->> 'operator',
       (p.target -> 'value')::float8
FROM coinfleet_predictions AS p;
