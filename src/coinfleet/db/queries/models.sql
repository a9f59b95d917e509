-- name: insert_model --
-- Register a new model (inactive until activated).
INSERT INTO coinfleet_models
    (name, algorithm, format, artifact, artifact_sha256, features, target, settings, training_metrics, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id

-- name: list_models --
-- Every model that is not deleted, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE status <> 'deleted'
ORDER BY id

-- name: get_model_by_name --
-- One model by name, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE name = $1 AND status <> 'deleted'

-- name: get_model_by_id --
-- One model by id, without its artifact.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
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

-- name: get_model_by_predecessor_id --
-- The model brought over from the predecessor's model with this id, if any (deleted ones too).
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE source ->> 'predecessor_id' = $1
