-- Webhooks hardened: every model has a signing secret of its own (kept out of the settings, which
-- are shown and logged), claims name the database session of the worker that holds them (a claim
-- of a session that ended is taken back at once), and an attempt is logged when it starts (so one
-- cut short by a crash stays in the log).

-- A random secret: two version-4 UUIDs come from PostgreSQL's strong random source (244 random bits).
CREATE FUNCTION coinfleet_new_webhook_secret() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
$$;

CREATE TABLE coinfleet_webhook_secrets (
    model_id   integer     PRIMARY KEY REFERENCES coinfleet_models (id) ON DELETE CASCADE,
    secret     text        NOT NULL CHECK (secret <> ''),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every new model gets a generated secret, so every alert is signed.
CREATE FUNCTION coinfleet_model_gets_secret() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coinfleet_webhook_secrets (model_id, secret)
    VALUES (NEW.id, coinfleet_new_webhook_secret())
    ON CONFLICT (model_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_models_get_a_secret
    AFTER INSERT ON coinfleet_models
    FOR EACH ROW EXECUTE FUNCTION coinfleet_model_gets_secret();

-- Existing models: a secret set before moves here, the others get a generated one.
INSERT INTO coinfleet_webhook_secrets (model_id, secret)
SELECT id,
       coalesce(nullif(settings ->> 'webhook_secret', ''), coinfleet_new_webhook_secret())
FROM coinfleet_models;
UPDATE coinfleet_models SET settings = settings - 'webhook_secret' WHERE settings ? 'webhook_secret';

-- The session holding a claim: its backend pid and start time (a pid alone may be reused).
ALTER TABLE coinfleet_alerts
    ADD COLUMN claimed_pid           integer,
    ADD COLUMN claimed_backend_start timestamptz;

-- An attempt row is written when the attempt is claimed; finished_at stays NULL until its outcome
-- is known, and an attempt cut short (the worker died) is closed with an error saying so.
ALTER TABLE coinfleet_alert_attempts
    ALTER COLUMN latency_ms DROP NOT NULL,
    ADD COLUMN worker      text,
    ADD COLUMN finished_at timestamptz;
UPDATE coinfleet_alert_attempts SET finished_at = attempted_at;
CREATE INDEX coinfleet_alert_attempts_open_idx ON coinfleet_alert_attempts (alert_id)
    WHERE finished_at IS NULL;
