-- The webhook outbox: one row per prediction a model's send rules pick, written in the scoring
-- transaction; delivered per model, in id order, by any number of workers (docs/webhooks.md).

CREATE TABLE coinfleet_alerts (
    id              bigserial   PRIMARY KEY,
    model_id        integer     NOT NULL REFERENCES coinfleet_models (id),
    -- NULL for a prediction suppressed by an ignore window or a log limit (it has no row)
    prediction_id   bigint,
    mint            text        NOT NULL,
    metric_ts       timestamptz NOT NULL,
    tag             text        NOT NULL CHECK (tag IN ('negative', 'positive', 'alert')),
    suppressed      text,
    url             text        NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    -- the exact JSON body, so every attempt sends the same bytes
    body            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- a worker owns the alert until then; a vanished worker's claim simply expires
    claimed_by      text,
    claimed_until   timestamptz,
    -- the age limit counts from here (reset by a manual retry)
    pending_since   timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX coinfleet_alerts_pending_idx ON coinfleet_alerts (model_id, id) WHERE state = 'pending';
CREATE INDEX coinfleet_alerts_model_idx ON coinfleet_alerts (model_id, id);
CREATE INDEX coinfleet_alerts_delivered_idx ON coinfleet_alerts (delivered_at) WHERE state = 'delivered';

-- One row per delivery attempt, pruned after the retention period.
CREATE TABLE coinfleet_alert_attempts (
    id               bigserial   PRIMARY KEY,
    alert_id         bigint      NOT NULL REFERENCES coinfleet_alerts (id) ON DELETE CASCADE,
    model_id         integer     NOT NULL,
    attempt          integer     NOT NULL,
    url              text        NOT NULL,
    status_code      integer,
    latency_ms       double precision NOT NULL,
    error            text,
    response_excerpt text        CHECK (char_length(response_excerpt) <= 500),
    attempted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX coinfleet_alert_attempts_alert_idx ON coinfleet_alert_attempts (alert_id);
CREATE INDEX coinfleet_alert_attempts_time_idx ON coinfleet_alert_attempts (attempted_at);

-- Wake delivery workers once per statement that queued alerts (delivered at commit).
CREATE FUNCTION coinfleet_alerts_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM coinfleet_new_alerts) THEN
        PERFORM pg_notify('coinfleet_alerts', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_alerts_after_insert
    AFTER INSERT ON coinfleet_alerts
    REFERENCING NEW TABLE AS coinfleet_new_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION coinfleet_alerts_queued();
