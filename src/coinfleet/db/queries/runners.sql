-- name: get_compiled --
-- The cached compile result of one artifact for one conversion route.
SELECT onnx, max_delta, fallback_reason
FROM coinfleet_compiled
WHERE artifact_sha256 = $1 AND recipe = $2

-- name: save_compiled --
-- Remember a compile result (the ONNX graph, or why the original serves).
INSERT INTO coinfleet_compiled (artifact_sha256, recipe, onnx, max_delta, fallback_reason)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (artifact_sha256, recipe) DO UPDATE
SET onnx = EXCLUDED.onnx, max_delta = EXCLUDED.max_delta, fallback_reason = EXCLUDED.fallback_reason,
    created_at = now()

-- name: recent_events --
-- The newest events (coin and time), to score real rows when verifying a compiled model.
SELECT mint, ts FROM coinfleet_events ORDER BY tx DESC, seq DESC LIMIT $1
