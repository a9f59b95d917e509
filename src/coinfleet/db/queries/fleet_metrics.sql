-- name: fleet_evaluation_backlog --
-- Per model that is not deleted: its predictions not evaluated yet, counted up to $1. The row comparison
-- keeps the count on the (model_id, evaluate_at) index: with a plain model_id = m.id the planner, which
-- plans the lateral once for any model, scanned the whole table per model when one model held most
-- open rows (5.7 s over 1M open predictions and 20 models; 0.16 s this way).
SELECT m.name, b.open_predictions
FROM coinfleet_models AS m
CROSS JOIN LATERAL (
    SELECT count(*) AS open_predictions
    FROM (
        SELECT FROM coinfleet_open_predictions AS o
        WHERE (o.model_id, o.evaluate_at) >= (m.id, '-infinity')
          AND (o.model_id, o.evaluate_at) <= (m.id, 'infinity')
        LIMIT $1
    ) AS capped
) AS b
WHERE m.status <> 'deleted'
ORDER BY m.id

-- name: fleet_delivery_latency --
-- Per model, the median and 99th percentile of webhook attempt latencies (ms) over the last $1 seconds.
SELECT m.name,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_ms) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY t.latency_ms) AS p99_ms,
       count(*) AS attempts
FROM coinfleet_alert_attempts AS t
JOIN coinfleet_models AS m ON m.id = t.model_id
WHERE t.attempted_at >= now() - make_interval(secs => $1)
GROUP BY m.name
ORDER BY m.name

-- name: bench_history_predictions --
-- $2 stored predictions of model $1 over 1000 coins, one bar a minute from $3 (benchmark history).
INSERT INTO coinfleet_predictions
    (model_id, model_version, mint, metric_ts, probability, prediction, tag, alert_threshold, target,
     evaluate_at, price_close, event_tx, event_seq)
SELECT $1, 1, 'history-' || (i % 1000), $3::timestamptz + make_interval(mins => i / 1000),
       (i % 997) / 997.0, (i % 2)::smallint,
       CASE WHEN i % 997 >= 698 THEN 'alert' WHEN i % 997 >= 499 THEN 'positive' ELSE 'negative' END,
       0.7, '{"kind": "change", "direction": "up", "change_percent": 2, "horizon_seconds": 120}'::jsonb,
       $3::timestamptz + make_interval(mins => i / 1000, secs => 120), 1e-8, '1'::xid8, i
FROM generate_series(0, $2 - 1) AS i

-- name: bench_backends --
-- The server processes of this database and the application that opened each session, and the
-- server's own (WAL writer, checkpointer, …): for those that are not a client's, the process's kind.
SELECT pid, CASE WHEN backend_type = 'client backend' THEN application_name ELSE backend_type END
    AS application_name
FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL
