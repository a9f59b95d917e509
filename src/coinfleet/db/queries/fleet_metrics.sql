-- name: fleet_gauges --
-- Per model that is not deleted: status, events behind its cursor, seconds since the oldest of them
-- was inserted, and open (not yet evaluated) predictions, due ones apart.
SELECT m.id, m.name, m.status,
       coalesce(b.events, 0) AS lag_events,
       coalesce(extract(epoch FROM clock_timestamp() - b.oldest), 0)::float8 AS lag_seconds,
       (SELECT count(*) FROM coinfleet_open_predictions AS o WHERE o.model_id = m.id) AS open_predictions
FROM coinfleet_models AS m
LEFT JOIN coinfleet_cursors AS c ON c.model_id = m.id
LEFT JOIN LATERAL (
    SELECT count(*) AS events, min(e.inserted_at) AS oldest
    FROM coinfleet_events AS e
    WHERE (e.tx, e.seq) > (c.tx, c.seq)
) AS b ON c.model_id IS NOT NULL
WHERE m.status <> 'deleted'
ORDER BY m.id

-- name: fleet_alert_states --
-- Alerts in the outbox per model and state (delivered ones are pruned after the retention period).
SELECT m.name, a.state, count(*) AS alerts
FROM coinfleet_alerts AS a
JOIN coinfleet_models AS m ON m.id = a.model_id
GROUP BY m.name, a.state
ORDER BY m.name, a.state

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
