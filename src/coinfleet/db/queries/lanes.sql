-- name: store_batch --
-- A batch in one statement, so atomic without a transaction: its predictions (a repeat of model, coin
-- and metric time is ignored), the scan-cache rows it changed, and the model's cursor. Returns the new
-- prediction ids when $31 asks for them (the webhook outbox needs them).
WITH inserted AS (
    INSERT INTO coinfleet_predictions
        (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
         evaluate_at, phase_id, price_open, price_high, price_low, price_close, market_cap_close,
         volume_sol, event_tx, event_seq)
    SELECT $1, $2, p.mint, p.metric_ts, p.probability, p.prediction, p.tag, $3, $4::jsonb,
           p.metric_ts + make_interval(secs => $5), p.phase_id, p.price_open, p.price_high, p.price_low,
           p.price_close, p.market_cap_close, p.volume_sol, p.event_tx, p.event_seq
    FROM unnest($6::text[], $7::timestamptz[], $8::float8[], $9::int2[], $10::text[], $11::int[],
                $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[],
                $17::float8[], $18::xid8[], $19::int8[])
         AS p (mint, metric_ts, probability, prediction, tag, phase_id, price_open, price_high,
               price_low, price_close, market_cap_close, volume_sol, event_tx, event_seq)
    ON CONFLICT (model_id, mint, metric_ts) DO NOTHING
    RETURNING id, mint, metric_ts
), states AS (
    INSERT INTO coinfleet_scan_state
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT $1, s.*
    FROM unnest($20::text[], $21::timestamptz[], $22::float8[], $23::text[], $24::timestamptz[],
                $25::text[], $26::int[], $27::int[], $28::int[])
         AS s (mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
               stored_negative, stored_positive, stored_alert)
    ON CONFLICT (model_id, mint) DO UPDATE SET
        last_scan_ts = excluded.last_scan_ts, last_probability = excluded.last_probability,
        last_tag = excluded.last_tag, ignore_until = excluded.ignore_until,
        ignore_reason = excluded.ignore_reason, stored_negative = excluded.stored_negative,
        stored_positive = excluded.stored_positive, stored_alert = excluded.stored_alert
), moved AS (
    UPDATE coinfleet_cursors SET tx = $29::xid8, seq = $30, updated_at = now() WHERE model_id = $1
)
SELECT id, mint, metric_ts FROM inserted WHERE $31::bool

-- name: load_scan_state --
-- The whole scan cache of one model.
SELECT mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
       stored_negative, stored_positive, stored_alert
FROM coinfleet_scan_state WHERE model_id = $1

-- name: prediction_counts --
-- Stored predictions of one model by tag.
SELECT tag, count(*) AS n FROM coinfleet_predictions WHERE model_id = $1 GROUP BY tag
