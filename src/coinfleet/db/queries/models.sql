-- name: insert_model --
-- Register a new model (inactive until activated).
INSERT INTO coinfleet_models
    (name, algorithm, format, artifact, artifact_sha256, features, target, settings, training_metrics)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id

-- name: list_models --
-- Every model that is not deleted, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE status <> 'deleted'
ORDER BY id

-- name: get_model_by_name --
-- One model by name, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE name = $1 AND status <> 'deleted'

-- name: get_model_by_id --
-- One model by id, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE id = $1

-- name: get_artifact --
-- The stored model file of one model.
SELECT artifact FROM coinfleet_models WHERE id = $1

-- name: set_model_status --
-- Change a model's status and the reason shown to operators.
UPDATE coinfleet_models SET status = $2, status_reason = $3, updated_at = now() WHERE id = $1

-- name: set_model_settings --
-- Replace a model's settings.
UPDATE coinfleet_models SET settings = $2, updated_at = now() WHERE id = $1

-- name: lock_model_settings --
-- A model's id and stored settings, its row locked until the transaction ends (read-modify-write).
SELECT id, settings FROM coinfleet_models WHERE name = $1 AND status <> 'deleted' FOR UPDATE

-- name: recent_phases --
-- The phases of the newest $1 metric rows (the phases that exist, as far as a model should care).
SELECT array_agg(DISTINCT phase_id_at_time) FILTER (WHERE phase_id_at_time IS NOT NULL)
FROM (SELECT phase_id_at_time FROM coin_metrics ORDER BY "timestamp" DESC LIMIT $1) AS recent
