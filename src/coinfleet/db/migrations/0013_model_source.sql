-- Where a model's file came from: the file name, its format and SHA-256 as given (a trusted pickle is
-- stored converted, so its own hash is kept here), whether it was trusted, how it serves (compiled ONNX
-- or native, and why), and for a model brought over from the predecessor, its id there.
ALTER TABLE coinfleet_models ADD COLUMN source jsonb NOT NULL DEFAULT '{}';

-- A predecessor model is brought over once, however often the move-over runs.
CREATE UNIQUE INDEX coinfleet_models_predecessor_id ON coinfleet_models ((source ->> 'predecessor_id'))
    WHERE source ? 'predecessor_id';

-- Every version of every model's file and metadata. The model's own row holds the version it serves;
-- `models replace` adds a version and `models promote` switches the row to any of them (the lane then
-- restarts at the model's cursor, so no event is lost or scored twice). Predictions record the version.
CREATE TABLE coinfleet_model_versions (
    model_id         integer     NOT NULL REFERENCES coinfleet_models (id),
    version          integer     NOT NULL CHECK (version > 0),
    algorithm        text        NOT NULL,
    format           text        NOT NULL,
    artifact         bytea       NOT NULL,
    artifact_sha256  text        NOT NULL,
    features         text[]      NOT NULL,
    target           jsonb       NOT NULL,
    training_metrics jsonb       NOT NULL DEFAULT '{}',
    source           jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, version)
);

INSERT INTO coinfleet_model_versions
    (model_id, version, algorithm, format, artifact, artifact_sha256, features, target, training_metrics,
     source, created_at)
SELECT id, version, algorithm, format, artifact, artifact_sha256, features, target, training_metrics, source,
       created_at
FROM coinfleet_models;
