-- name: store_batch --
-- A batch in one statement, so atomic without a transaction: its predictions (a repeat of model, coin
-- and metric time is ignored), the scan-cache rows it changed, and the model's cursor. Returns the new
-- prediction ids when $22 asks for them (the webhook outbox needs them). Columns that are never NULL
-- come as one two-dimensional array per type, a row per prediction or coin ($12: probability and the
-- price snapshot; $19: the stored counts): the client encodes a few arrays and rows, not one array and
-- element per column.
WITH inserted AS (
    INSERT INTO coinfleet_predictions
        (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
         evaluate_at, phase_id, price_open, price_high, price_low, price_close, market_cap_close,
         volume_sol, event_tx, event_seq)
    SELECT $1, $2, p.mint, p.metric_ts, n[p.i][1], CASE WHEN n[p.i][1] >= 0.5 THEN 1 ELSE 0 END, p.tag,
           $3, $4::jsonb, p.metric_ts + make_interval(secs => $5), p.phase_id, n[p.i][2], n[p.i][3],
           n[p.i][4], n[p.i][5], n[p.i][6], n[p.i][7], p.event_tx, p.event_seq
    FROM unnest($6::text[], $7::timestamptz[], $8::text[], $9::int[], $10::xid8[], $11::int8[])
             WITH ORDINALITY AS p (mint, metric_ts, tag, phase_id, event_tx, event_seq, i),
         (SELECT $12::float8[] AS n) AS numbers
    ON CONFLICT (model_id, mint, metric_ts) DO NOTHING
    RETURNING id, mint, metric_ts
), states AS (
    INSERT INTO coinfleet_scan_state
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT $1, s.mint, s.last_scan_ts, s.last_probability, s.last_tag, s.ignore_until, s.ignore_reason,
           c[s.i][1], c[s.i][2], c[s.i][3]
    FROM unnest($13::text[], $14::timestamptz[], $15::float8[], $16::text[], $17::timestamptz[],
                $18::text[])
             WITH ORDINALITY AS s (mint, last_scan_ts, last_probability, last_tag, ignore_until,
                                   ignore_reason, i),
         (SELECT $19::int[] AS c) AS counts
    ON CONFLICT (model_id, mint) DO UPDATE SET
        last_scan_ts = excluded.last_scan_ts, last_probability = excluded.last_probability,
        last_tag = excluded.last_tag, ignore_until = excluded.ignore_until,
        ignore_reason = excluded.ignore_reason, stored_negative = excluded.stored_negative,
        stored_positive = excluded.stored_positive, stored_alert = excluded.stored_alert
), moved AS (
    UPDATE coinfleet_cursors SET tx = $20::xid8, seq = $21, updated_at = now() WHERE model_id = $1
)
SELECT id, mint, metric_ts FROM inserted WHERE $22::bool

-- name: load_scan_state --
-- The whole scan cache of one model.
SELECT mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
       stored_negative, stored_positive, stored_alert
FROM coinfleet_scan_state WHERE model_id = $1

-- name: prediction_counts --
-- Stored predictions of one model by tag.
SELECT tag, count(*) AS n FROM coinfleet_predictions WHERE model_id = $1 GROUP BY tag
