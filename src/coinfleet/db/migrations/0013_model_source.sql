-- Where a model's file came from: the file name, its format and SHA-256 as given (a trusted pickle is
-- stored converted, so its own hash is kept here), whether it was trusted, how it serves (compiled ONNX
-- or native, and why), and for a model brought over from the predecessor, its id there.
ALTER TABLE coinfleet_models ADD COLUMN source jsonb NOT NULL DEFAULT '{}';

-- A predecessor model is brought over once, however often the move-over runs.
CREATE UNIQUE INDEX coinfleet_models_predecessor_id ON coinfleet_models ((source ->> 'predecessor_id'))
    WHERE source ? 'predecessor_id';
