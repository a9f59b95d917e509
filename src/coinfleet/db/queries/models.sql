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

-- name: lock_model_settings --
-- A model's id and stored settings, its row locked until the transaction ends (read-modify-write).
SELECT id, settings FROM coinfleet_models WHERE name = $1 AND status <> 'deleted' FOR UPDATE

-- name: recent_phases --
-- The phases of the newest $1 metric rows (the phases that exist, as far as a model should care).
SELECT array_agg(DISTINCT phase_id_at_time) FILTER (WHERE phase_id_at_time IS NOT NULL)
FROM (SELECT phase_id_at_time FROM coin_metrics ORDER BY "timestamp" DESC LIMIT $1) AS recent

-- name: get_model_by_predecessor_id --
-- The model brought over from the predecessor's model with this id, if any (deleted ones too).
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE source ->> 'predecessor_id' = $1

-- name: insert_first_version --
-- A new model's file and metadata as its version 1.
INSERT INTO coinfleet_model_versions
    (model_id, version, algorithm, format, artifact, artifact_sha256, features, target, training_metrics, source)
SELECT id, version, algorithm, format, artifact, artifact_sha256, features, target, training_metrics, source
FROM coinfleet_models WHERE id = $1

-- name: lock_model --
-- Hold the model's row until commit: versions of one model are numbered one at a time.
SELECT id FROM coinfleet_models WHERE id = $1 FOR UPDATE

-- name: insert_version --
-- The model's next version; its number.
INSERT INTO coinfleet_model_versions
    (model_id, version, algorithm, format, artifact, artifact_sha256, features, target, training_metrics, source)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9
FROM coinfleet_model_versions WHERE model_id = $1
RETURNING version

-- name: switch_version --
-- Serve another version: its file and metadata become the model's (lanes restart on the version change).
UPDATE coinfleet_models AS m
SET version = v.version, algorithm = v.algorithm, format = v.format, artifact = v.artifact,
    artifact_sha256 = v.artifact_sha256, features = v.features, target = v.target,
    training_metrics = v.training_metrics, source = v.source, updated_at = now()
FROM coinfleet_model_versions AS v
WHERE m.id = $1 AND v.model_id = m.id AND v.version = $2
RETURNING m.id

-- name: list_versions --
-- Every version of one model, oldest first, without the files.
SELECT version, algorithm, format, artifact_sha256, features, target, training_metrics, source, created_at
FROM coinfleet_model_versions WHERE model_id = $1 ORDER BY version

-- name: get_version_artifact --
-- The file of one version of a model.
SELECT artifact FROM coinfleet_model_versions WHERE model_id = $1 AND version = $2

-- name: rename_model --
-- Give a model another name.
UPDATE coinfleet_models SET name = $2, updated_at = now() WHERE id = $1

-- name: set_shadow_version --
-- A shadow model scores as the version of its live model it stands for (its predictions record that).
WITH shadow AS (
    UPDATE coinfleet_models SET version = $2 WHERE id = $1 RETURNING id
)
UPDATE coinfleet_model_versions SET version = $2 WHERE model_id = (SELECT id FROM shadow)

-- name: shadows_of --
-- The shadow models (not deleted) scoring a version beside a live model.
SELECT id, name, version, algorithm, format, artifact_sha256, features, target, settings,
       training_metrics, source, status, status_reason, created_at, updated_at
FROM coinfleet_models
WHERE source ->> 'shadow_of' = $1 AND status <> 'deleted'
ORDER BY id

-- name: compare_on_same_events --
-- Two models' results on the events both scored: counts by tag, results at the horizon, alert gains.
WITH pairs AS (
    SELECT l.id AS live_id, s.id AS shadow_id
    FROM coinfleet_predictions AS l
    JOIN coinfleet_predictions AS s ON s.model_id = $2 AND s.mint = l.mint AND s.metric_ts = l.metric_ts
    WHERE l.model_id = $1
), scored AS (
    SELECT 'live' AS side, live_id AS prediction_id FROM pairs
    UNION ALL
    SELECT 'shadow', shadow_id FROM pairs
)
SELECT x.side, min(p.model_version) AS version,
       count(*) AS events,
       count(*) FILTER (WHERE p.tag = 'alert') AS alerts,
       count(e.prediction_id) AS evaluated,
       count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'success') AS success,
       count(e.prediction_id) FILTER (WHERE e.result_at_horizon = 'failed') AS failed,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.result_at_horizon = 'success') AS alerts_success,
       count(e.prediction_id) FILTER (WHERE p.tag = 'alert' AND e.result_at_horizon = 'failed') AS alerts_failed,
       avg(CASE WHEN p.target ->> 'direction' = 'down' THEN -e.change_at_horizon_pct
                ELSE e.change_at_horizon_pct END)
           FILTER (WHERE p.tag = 'alert' AND e.status = 'ok' AND e.change_at_horizon_pct IS NOT NULL
                   AND e.change_at_horizon_pct NOT IN ('Infinity'::float8, '-Infinity'::float8))
           AS alert_gain_avg_pct
FROM scored AS x
JOIN coinfleet_predictions AS p ON p.id = x.prediction_id
LEFT JOIN coinfleet_evaluations AS e ON e.prediction_id = p.id
GROUP BY x.side
ORDER BY x.side
