-- name: store_batch --
-- Batches of one or more models in one statement, so atomic without a transaction: their predictions
-- (a repeat of model, coin and metric time is ignored; lanes first send store_batch_failing_on_repeats,
-- the same without its ON CONFLICT line), the scan-cache rows they changed, and each model's cursor
-- with its totals and whether its scan cache is still complete ($17: the lane keeps it). Returns the
-- new prediction ids when $16 asks for them (the webhook outbox needs them; else one row of NULLs).
-- Fencing: a cursor moves only forward, and where the batch names its lease epoch ($20, NULL for a
-- lane without a lease) only while the cursor row holds that epoch. The UPDATE's row lock orders it
-- against a takeover (acquire_lease); unless every batch's cursor moved, the statement fails with
-- SQLSTATE CF409 and stores nothing. $18 and $19 hold where each lane believes its cursor is (NULL:
-- not checked): a stored cursor elsewhere (a crash lost the lane's last commits, so a batch after one
-- the server lost cannot skip its events) fails the whole statement (CF001). $1–$5, $14, $15 and
-- $17–$20 hold one element per batch; a prediction or coin names its batch by position (from 1).
-- Numbers come as rows of a two-dimensional array per type, a row per prediction or coin, so that the
-- client encodes a few arrays, not an array and an element per column: times as microseconds since
-- the epoch, tags by their position in $6, and -2^63 (outside both int4 and timestamptz) for a NULL
-- phase or time, 0 for no tag.
WITH inserted AS (
    INSERT INTO coinfleet_predictions
        (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
         evaluate_at, phase_id, price_open, price_high, price_low, price_close, market_cap_close,
         volume_sol, event_tx, event_seq)
    SELECT ids[k[p.i][5]], versions[k[p.i][5]], p.mint, coinfleet_from_epoch_us(k[p.i][1]), n[p.i][1],
           CASE WHEN n[p.i][1] >= 0.5 THEN 1 ELSE 0 END, tags[k[p.i][2]], thresholds[k[p.i][5]],
           targets[k[p.i][5]], coinfleet_from_epoch_us(k[p.i][1]) + make_interval(secs => horizons[k[p.i][5]]),
           nullif(k[p.i][3], -9223372036854775808)::int, n[p.i][2], n[p.i][3], n[p.i][4], n[p.i][5],
           n[p.i][6], n[p.i][7], p.event_tx, k[p.i][4]
    FROM unnest($7::text[], $8::xid8[]) WITH ORDINALITY AS p (mint, event_tx, i),
         (SELECT $9::float8[] AS n, $10::int8[] AS k, $6::text[] AS tags, $1::int4[] AS ids,
                 $2::int4[] AS versions, $3::float8[] AS thresholds, $4::jsonb[] AS targets,
                 $5::float8[] AS horizons) AS numbers
    ON CONFLICT (model_id, mint, metric_ts) DO NOTHING
    RETURNING id, model_id, mint, metric_ts
), states AS (
    INSERT INTO coinfleet_scan_state
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT ids[k[s.i][8]], s.mint, coinfleet_from_epoch_us(k[s.i][1]), s.last_probability, tags[k[s.i][3]],
           coinfleet_from_epoch_us(nullif(k[s.i][2], -9223372036854775808)), tags[nullif(k[s.i][4], 0)],
           k[s.i][5], k[s.i][6], k[s.i][7]
    FROM unnest($11::text[], $12::float8[]) WITH ORDINALITY AS s (mint, last_probability, i),
         (SELECT $13::int8[] AS k, $6::text[] AS tags, $1::int4[] AS ids) AS numbers
    ON CONFLICT (model_id, mint) DO UPDATE SET
        last_scan_ts = excluded.last_scan_ts, last_probability = excluded.last_probability,
        last_tag = excluded.last_tag, ignore_until = excluded.ignore_until,
        ignore_reason = excluded.ignore_reason, stored_negative = excluded.stored_negative,
        stored_positive = excluded.stored_positive, stored_alert = excluded.stored_alert
), moved AS (
    UPDATE coinfleet_cursors AS c SET
        tx = coinfleet_checked_cursor_tx(c.model_id, c.tx, c.seq, b.from_tx, b.from_seq, b.tx),
        seq = b.seq, updated_at = now(), scan_cache_complete = c.scan_cache_complete AND b.keeps,
        stored_predictions = c.stored_predictions + coalesce(s.stored, 0),
        last_prediction_at = greatest(c.last_prediction_at, s.newest)
    FROM unnest($1::int4[], $14::xid8[], $15::int8[], $17::bool[], $18::xid8[], $19::int8[], $20::int8[])
        AS b (model_id, tx, seq, keeps, from_tx, from_seq, epoch)
    LEFT JOIN (
        SELECT model_id, count(*) AS stored, max(metric_ts) AS newest FROM inserted GROUP BY model_id
    ) AS s USING (model_id)
    WHERE c.model_id = b.model_id AND (b.tx, b.seq) > (c.tx, c.seq)
      AND (b.epoch IS NULL OR c.lease_epoch = b.epoch)
    RETURNING c.model_id
)
SELECT i.id, i.model_id, i.mint, i.metric_ts
FROM (SELECT coinfleet_require_moved($1::int4[], array_agg(model_id)) AS ok FROM moved) AS fence
LEFT JOIN inserted AS i ON fence.ok AND $16::bool

-- name: store_batch_failing_on_repeats --
-- store_batch without its ON CONFLICT line: a repeated model, coin and metric time fails the statement
-- (unique violation) instead of being left out, which spares PostgreSQL a look into the unique index
-- before every insert. Lanes send this first and store_batch after a failure; a unit test keeps the
-- two statements equal but for that line.
WITH inserted AS (
    INSERT INTO coinfleet_predictions
        (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
         evaluate_at, phase_id, price_open, price_high, price_low, price_close, market_cap_close,
         volume_sol, event_tx, event_seq)
    SELECT ids[k[p.i][5]], versions[k[p.i][5]], p.mint, coinfleet_from_epoch_us(k[p.i][1]), n[p.i][1],
           CASE WHEN n[p.i][1] >= 0.5 THEN 1 ELSE 0 END, tags[k[p.i][2]], thresholds[k[p.i][5]],
           targets[k[p.i][5]], coinfleet_from_epoch_us(k[p.i][1]) + make_interval(secs => horizons[k[p.i][5]]),
           nullif(k[p.i][3], -9223372036854775808)::int, n[p.i][2], n[p.i][3], n[p.i][4], n[p.i][5],
           n[p.i][6], n[p.i][7], p.event_tx, k[p.i][4]
    FROM unnest($7::text[], $8::xid8[]) WITH ORDINALITY AS p (mint, event_tx, i),
         (SELECT $9::float8[] AS n, $10::int8[] AS k, $6::text[] AS tags, $1::int4[] AS ids,
                 $2::int4[] AS versions, $3::float8[] AS thresholds, $4::jsonb[] AS targets,
                 $5::float8[] AS horizons) AS numbers
    RETURNING id, model_id, mint, metric_ts
), states AS (
    INSERT INTO coinfleet_scan_state
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT ids[k[s.i][8]], s.mint, coinfleet_from_epoch_us(k[s.i][1]), s.last_probability, tags[k[s.i][3]],
           coinfleet_from_epoch_us(nullif(k[s.i][2], -9223372036854775808)), tags[nullif(k[s.i][4], 0)],
           k[s.i][5], k[s.i][6], k[s.i][7]
    FROM unnest($11::text[], $12::float8[]) WITH ORDINALITY AS s (mint, last_probability, i),
         (SELECT $13::int8[] AS k, $6::text[] AS tags, $1::int4[] AS ids) AS numbers
    ON CONFLICT (model_id, mint) DO UPDATE SET
        last_scan_ts = excluded.last_scan_ts, last_probability = excluded.last_probability,
        last_tag = excluded.last_tag, ignore_until = excluded.ignore_until,
        ignore_reason = excluded.ignore_reason, stored_negative = excluded.stored_negative,
        stored_positive = excluded.stored_positive, stored_alert = excluded.stored_alert
), moved AS (
    UPDATE coinfleet_cursors AS c SET
        tx = coinfleet_checked_cursor_tx(c.model_id, c.tx, c.seq, b.from_tx, b.from_seq, b.tx),
        seq = b.seq, updated_at = now(), scan_cache_complete = c.scan_cache_complete AND b.keeps,
        stored_predictions = c.stored_predictions + coalesce(s.stored, 0),
        last_prediction_at = greatest(c.last_prediction_at, s.newest)
    FROM unnest($1::int4[], $14::xid8[], $15::int8[], $17::bool[], $18::xid8[], $19::int8[], $20::int8[])
        AS b (model_id, tx, seq, keeps, from_tx, from_seq, epoch)
    LEFT JOIN (
        SELECT model_id, count(*) AS stored, max(metric_ts) AS newest FROM inserted GROUP BY model_id
    ) AS s USING (model_id)
    WHERE c.model_id = b.model_id AND (b.tx, b.seq) > (c.tx, c.seq)
      AND (b.epoch IS NULL OR c.lease_epoch = b.epoch)
    RETURNING c.model_id
)
SELECT i.id, i.model_id, i.mint, i.metric_ts
FROM (SELECT coinfleet_require_moved($1::int4[], array_agg(model_id)) AS ok FROM moved) AS fence
LEFT JOIN inserted AS i ON fence.ok AND $16::bool

-- name: scan_cache_complete --
-- Whether model $1's scan cache holds every stored prediction (true for a model without a cursor yet).
SELECT coalesce((SELECT scan_cache_complete FROM coinfleet_cursors WHERE model_id = $1), true)

-- name: rebuild_scan_state --
-- Complete model $1's scan cache after lanes stored without it. Rules that read no cache leave no
-- scored event unstored, so each coin's newest prediction newer than its cached scan is its last scan
-- (with no ignore window, as a scan without one leaves), and its stored counts by tag are recounted.
WITH counted AS (
    SELECT mint, max(metric_ts) AS newest, count(*) FILTER (WHERE tag = 'negative') AS negative,
           count(*) FILTER (WHERE tag = 'positive') AS positive, count(*) FILTER (WHERE tag = 'alert') AS alert
    FROM coinfleet_predictions WHERE model_id = $1 GROUP BY mint
), rebuilt AS (
    INSERT INTO coinfleet_scan_state AS s
        (model_id, mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
         stored_negative, stored_positive, stored_alert)
    SELECT $1, c.mint, c.newest, p.probability, p.tag, NULL, NULL, c.negative, c.positive, c.alert
    FROM counted AS c
    JOIN coinfleet_predictions AS p ON p.model_id = $1 AND p.mint = c.mint AND p.metric_ts = c.newest
    ON CONFLICT (model_id, mint) DO UPDATE SET
        last_scan_ts = greatest(s.last_scan_ts, excluded.last_scan_ts),
        last_probability = CASE WHEN excluded.last_scan_ts > s.last_scan_ts
                                THEN excluded.last_probability ELSE s.last_probability END,
        last_tag = CASE WHEN excluded.last_scan_ts > s.last_scan_ts THEN excluded.last_tag ELSE s.last_tag END,
        ignore_until = CASE WHEN excluded.last_scan_ts > s.last_scan_ts THEN NULL ELSE s.ignore_until END,
        ignore_reason = CASE WHEN excluded.last_scan_ts > s.last_scan_ts THEN NULL ELSE s.ignore_reason END,
        stored_negative = excluded.stored_negative, stored_positive = excluded.stored_positive,
        stored_alert = excluded.stored_alert
)
UPDATE coinfleet_cursors SET scan_cache_complete = true WHERE model_id = $1

-- name: load_scan_state --
-- The whole scan cache of one model.
SELECT mint, last_scan_ts, last_probability, last_tag, ignore_until, ignore_reason,
       stored_negative, stored_positive, stored_alert
FROM coinfleet_scan_state WHERE model_id = $1

-- name: prediction_counts --
-- Stored predictions of one model by tag.
SELECT tag, count(*) AS n FROM coinfleet_predictions WHERE model_id = $1 GROUP BY tag

-- name: insert_set_aside --
-- Events set aside for a model (not scored), with the reason; a repeat (a batch stored again) is ignored.
INSERT INTO coinfleet_set_aside (model_id, event_tx, event_seq, mint, metric_ts, reason, detail)
SELECT $1, tx, seq, mint, ts, reason, detail
FROM unnest($2::xid8[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
    AS s (tx, seq, mint, ts, reason, detail)
ON CONFLICT DO NOTHING

-- name: set_aside_counts --
-- How many events were set aside for model $1, by reason.
SELECT reason, count(*) AS n FROM coinfleet_set_aside WHERE model_id = $1 GROUP BY reason ORDER BY reason

-- name: recent_set_aside --
-- The newest events set aside for model $1, up to $2.
SELECT mint, metric_ts, reason, detail, created_at FROM coinfleet_set_aside
WHERE model_id = $1 ORDER BY created_at DESC, event_tx DESC, event_seq DESC LIMIT $2

-- name: set_aside_by_model --
-- How many events were set aside for each model, by reason.
SELECT model_id, reason, count(*) AS n FROM coinfleet_set_aside GROUP BY model_id, reason
