-- Compiled (ONNX) forms of model artifacts, so a restart does not convert and verify every model again.
-- One row per artifact hash and conversion route; a failed compile is remembered with its reason.
CREATE TABLE coinfleet_compiled (
    artifact_sha256 text             NOT NULL,
    recipe          text             NOT NULL,
    onnx            bytea,
    max_delta       double precision,
    fallback_reason text,
    created_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (artifact_sha256, recipe),
    CHECK ((onnx IS NULL) <> (fallback_reason IS NULL))
);
