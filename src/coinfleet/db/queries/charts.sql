-- name: chart_predictions --
-- The newest predictions of one model (made at or after $2) with their outcomes, for its statistics charts.
SELECT p.metric_ts, p.probability, p.tag, e.result_at_horizon, e.result_within
FROM coinfleet_predictions AS p
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
WHERE p.model_id = $1 AND ($2::timestamptz IS NULL OR p.metric_ts >= $2)
ORDER BY p.id DESC
LIMIT $3
