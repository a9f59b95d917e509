-- The live stream: one NOTIFY per statement that stored predictions or queued alerts, naming the id
-- range and the models it touched, so a listener reads exactly those rows once (no polling of tables).
-- The payload stays far below NOTIFY's 8000-byte limit: a kind, two ids and a few model ids.

CREATE FUNCTION coinfleet_stream_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    summary text;
BEGIN
    SELECT json_build_object('kind', 'prediction', 'first', min(n.id), 'last', max(n.id),
                             'models', array_agg(DISTINCT n.model_id))::text
    INTO summary
    FROM coinfleet_new_predictions AS n
    HAVING count(*) > 0;
    IF summary IS NOT NULL THEN
        PERFORM pg_notify('coinfleet_stream', summary);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_predictions_stream
    AFTER INSERT ON coinfleet_predictions
    REFERENCING NEW TABLE AS coinfleet_new_predictions
    FOR EACH STATEMENT EXECUTE FUNCTION coinfleet_stream_predictions();

CREATE FUNCTION coinfleet_stream_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    summary text;
BEGIN
    SELECT json_build_object('kind', 'alert', 'first', min(n.id), 'last', max(n.id),
                             'models', array_agg(DISTINCT n.model_id))::text
    INTO summary
    FROM coinfleet_new_stream_alerts AS n
    HAVING count(*) > 0;
    IF summary IS NOT NULL THEN
        PERFORM pg_notify('coinfleet_stream', summary);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER coinfleet_alerts_stream
    AFTER INSERT ON coinfleet_alerts
    REFERENCING NEW TABLE AS coinfleet_new_stream_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION coinfleet_stream_alerts();
