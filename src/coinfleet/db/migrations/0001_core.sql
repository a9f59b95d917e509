-- coinfleet core schema: market input, events, models, cursors, scan cache, predictions.

-- The ingester's table. Created only when missing, with the predecessor's columns, so an existing
-- database and ingester keep working unchanged.
CREATE TABLE IF NOT EXISTS coin_metrics (
    mint                  text             NOT NULL,
    "timestamp"           timestamptz      NOT NULL,
    phase_id_at_time      integer,
    price_open            double precision,
    price_high            double precision,
    price_low             double precision,
    price_close           double precision,
    market_cap_close      double precision,
    volume_sol            double precision,
    buy_volume_sol        double precision,
    sell_volume_sol       double precision,
    num_buys              integer,
    num_sells             integer,
    unique_wallets        integer,
    dev_sold_amount       double precision,
    buy_pressure_ratio    double precision,
    whale_buy_volume_sol  double precision,
    whale_sell_volume_sol double precision,
    volatility_pct        double precision,
    unique_signer_ratio   double precision,
    net_volume_sol        double precision
);
CREATE INDEX IF NOT EXISTS coin_metrics_mint_ts_idx ON coin_metrics (mint, "timestamp");
CREATE INDEX IF NOT EXISTS coin_metrics_ts_idx ON coin_metrics ("timestamp");

-- One row per inserted metric row. `tx` is the inserting transaction: readers only take events
-- below the xmin horizon and walk them in (tx, seq) order, so none is ever skipped (docs/architecture.md).
CREATE TABLE coinfleet_events (
    tx   xid8        NOT NULL,
    seq  bigserial   NOT NULL,
    mint text        NOT NULL,
    ts   timestamptz NOT NULL,
    PRIMARY KEY (tx, seq)
);

CREATE FUNCTION coinfleet_record_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coinfleet_events (tx, mint, ts)
    SELECT pg_current_xact_id(), n.mint, n."timestamp" FROM coinfleet_new_rows AS n;
    PERFORM pg_notify('coinfleet_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_events_after_insert
    AFTER INSERT ON coin_metrics
    REFERENCING NEW TABLE AS coinfleet_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION coinfleet_record_events();

CREATE TABLE coinfleet_models (
    id               serial      PRIMARY KEY,
    name             text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    version          integer     NOT NULL DEFAULT 1,
    algorithm        text        NOT NULL,
    format           text        NOT NULL,
    artifact         bytea       NOT NULL,
    artifact_sha256  text        NOT NULL,
    features         text[]      NOT NULL,
    target           jsonb       NOT NULL,
    settings         jsonb       NOT NULL DEFAULT '{}',
    training_metrics jsonb       NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'inactive'
                     CHECK (status IN ('active', 'inactive', 'quarantined', 'deleted')),
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The last event each model has fully handled; advanced in the batch's own transaction.
CREATE TABLE coinfleet_cursors (
    model_id   integer     PRIMARY KEY REFERENCES coinfleet_models (id),
    tx         xid8        NOT NULL,
    seq        bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per model and coin: what the filters need to remember (the predecessor's scan cache).
CREATE TABLE coinfleet_scan_state (
    model_id         integer     NOT NULL REFERENCES coinfleet_models (id),
    mint             text        NOT NULL,
    last_scan_ts     timestamptz NOT NULL,
    last_probability double precision NOT NULL,
    last_tag         text        NOT NULL,
    ignore_until     timestamptz,
    ignore_reason    text,
    stored_negative  integer     NOT NULL DEFAULT 0,
    stored_positive  integer     NOT NULL DEFAULT 0,
    stored_alert     integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (model_id, mint)
);

CREATE TABLE coinfleet_predictions (
    id               bigserial   PRIMARY KEY,
    model_id         integer     NOT NULL REFERENCES coinfleet_models (id),
    model_version    integer     NOT NULL,
    mint             text        NOT NULL,
    metric_ts        timestamptz NOT NULL,
    probability      double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    prediction       smallint    NOT NULL CHECK (prediction IN (0, 1)),
    tag              text        NOT NULL CHECK (tag IN ('negative', 'positive', 'alert')),
    alert_threshold  double precision NOT NULL,
    target           jsonb       NOT NULL,
    evaluate_at      timestamptz NOT NULL,
    phase_id         integer,
    price_open       double precision,
    price_high       double precision,
    price_low        double precision,
    price_close      double precision,
    market_cap_close double precision,
    volume_sol       double precision,
    event_tx         xid8        NOT NULL,
    event_seq        bigint      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, mint, metric_ts)
);
CREATE INDEX coinfleet_predictions_model_created_idx ON coinfleet_predictions (model_id, created_at);
CREATE INDEX coinfleet_predictions_mint_idx ON coinfleet_predictions (mint, metric_ts);

-- Wake every process when a model changes (new model, settings, status), so changes apply live.
CREATE FUNCTION coinfleet_model_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coinfleet_models', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_models_changed
    AFTER INSERT OR UPDATE ON coinfleet_models
    FOR EACH ROW EXECUTE FUNCTION coinfleet_model_changed();
