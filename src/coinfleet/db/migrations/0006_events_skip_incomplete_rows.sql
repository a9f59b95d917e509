-- A metric row without a coin or a time cannot be scored; the trigger must never make the ingester's
-- INSERT fail because of it (coin_metrics may predate coinfleet and allow NULLs), so skip such rows.
CREATE OR REPLACE FUNCTION coinfleet_record_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coinfleet_events (tx, mint, ts)
    SELECT pg_current_xact_id(), n.mint, n."timestamp"
    FROM coinfleet_new_rows AS n
    WHERE n.mint IS NOT NULL AND n."timestamp" IS NOT NULL;
    PERFORM pg_notify('coinfleet_events', '');
    RETURN NULL;
END
$$;
