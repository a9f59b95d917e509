-- name: model_stats --
-- Per model: predictions by tag, evaluation state, results by both rules and alert gains, for
-- predictions made at or after $1 (NULL: all), of the model named $2 (NULL: every model).
SELECT m.id, m.name, m.status,
       count(p.id) AS predictions,
       count(p.id) FILTER (WHERE p.tag = 'negative') AS negative,
       count(p.id) FILTER (WHERE p.tag = 'positive') AS positive,
       count(p.id) FILTER (WHERE p.tag = 'alert') AS alert,
       count(e.prediction_id) AS evaluated,
       count(p.id) FILTER (WHERE e.prediction_id IS NULL) AS pending,
       count(e.prediction_id) FILTER (WHERE e.status = 'ok') AS ok,
       count(e.prediction_id) FILTER (WHERE e.status = 'no_data') AS no_data,
       count(e.prediction_id) FILTER (WHERE e.status = 'invalid_price') AS invalid_price,
       count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'success') AS horizon_success,
       count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'failed') AS horizon_failed,
       count(e.prediction_id) FILTER (WHERE e.result_within = 'success') AS within_success,
       count(e.prediction_id) FILTER (WHERE e.result_within = 'failed') AS within_failed,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.reached_at_horizon IS NOT NULL)
           AS alerts_judged_at_horizon,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.reached_at_horizon) AS alerts_reached_at_horizon,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.status = 'ok') AS alerts_judged_within,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.status = 'ok' AND e.hit_within)
           AS alerts_hit_within,
       avg(g.gain) FILTER (WHERE p.tag = 'alert') AS alert_gain_avg_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gain) FILTER (WHERE p.tag = 'alert')
           AS alert_gain_median_pct
FROM coinfleet_models AS m
LEFT JOIN coinfleet_predictions AS p
       ON p.model_id = m.id AND ($1::timestamptz IS NULL OR p.metric_ts >= $1::timestamptz)
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
LEFT JOIN LATERAL (
    SELECT CASE WHEN p.target ->> 'direction' = 'down' THEN -e.change_at_horizon_pct
                ELSE e.change_at_horizon_pct END AS gain
    WHERE e.status = 'ok' AND e.change_at_horizon_pct IS NOT NULL
      AND e.change_at_horizon_pct NOT IN ('Infinity'::float8, '-Infinity'::float8)
) AS g ON true
WHERE m.status <> 'deleted' AND ($2::text IS NULL OR m.name = $2::text)
GROUP BY m.id, m.name, m.status
ORDER BY m.id
