-- The live stream carries the rows in its NOTIFY payloads instead of naming id ranges that the API
-- then read back (every stored prediction, ~10,000 a second at 20 models × 500 events/s, was fetched
-- again on the API's LISTEN connection, at normal priority, beside the lanes).
--
-- Each statement that stores predictions or queues alerts sends, per model and tag, up to 250 rows in
-- payloads kept below NOTIFY's 8000-byte limit: a header line `<event> <kind> <model> <tag> <created>`,
-- then one line per row — compact `id,probability,"metric_ts",mint` for predictions (the API writes
-- the JSON of the rows a client wants; `created` is the statement's now(), every row's created_at),
-- the SSE message's JSON for alerts (few). The rows beyond 250, or a row too long for a payload, are
-- counted instead: one `skipped` line per model with the counts by tag and the id range, so a client
-- knows what it did not get and can read it from /api/predictions.
--
-- Nothing is built while no stream client listens: a hub with clients (or within a minute after its
-- last one left) keeps a row in coinfleet_stream_watch with an expiry it renews; without a live row the
-- triggers return after one probe, so scoring pays nothing for a stream nobody watches.
-- The triggers never fail the INSERT: payloads are sized by construction.

CREATE UNLOGGED TABLE coinfleet_stream_watch (
    hub   text        PRIMARY KEY,
    until timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION coinfleet_stream_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    note record;
    created text := trim(both '"' FROM to_json(now())::text);  -- every row's created_at (its default)
BEGIN
    IF NOT EXISTS (SELECT 1 FROM coinfleet_stream_watch WHERE until > now()) THEN
        RETURN NULL;
    END IF;
    FOR note IN
        -- compact rows `id,probability,"metric_ts",mint` (the hub writes the JSON of the rows a client
        -- wants): one sort, no JSON per row; 25 rows of at most 300 bytes fit a payload
        WITH lines AS (
            SELECT n.model_id, n.tag, n.id,
                   row_number() OVER (PARTITION BY n.model_id, n.tag ORDER BY n.id) AS nth,
                   n.id || ',' || n.probability || ',' || to_json(n.metric_ts) || ',' || n.mint AS line
            FROM coinfleet_new_predictions AS n
        ), marked AS (
            SELECT l.*, l.nth <= 250 AND octet_length(l.line) <= 300 AND strpos(l.line, E'\n') = 0 AS sent
            FROM lines AS l
        ), chunks AS (
            SELECT k.model_id, k.tag, string_agg(k.line, E'\n' ORDER BY k.id) AS body, min(k.id) AS first
            FROM marked AS k
            WHERE k.sent
            GROUP BY k.model_id, k.tag, (k.nth - 1) / 25
        ), counted AS (
            SELECT k.model_id, k.tag, count(*) AS n, min(k.id) AS first, max(k.id) AS last
            FROM marked AS k
            WHERE NOT k.sent
            GROUP BY k.model_id, k.tag
        )
        SELECT format('prediction prediction %s %s %s', coalesce(m.name, c.model_id::text), c.tag, created)
                   || E'\n' || c.body AS payload,
               c.first AS rank
        FROM chunks AS c
        LEFT JOIN coinfleet_models AS m ON m.id = c.model_id
        UNION ALL
        SELECT format('skipped prediction %s - -', coalesce(m.name, t.model_id::text)) || E'\n' || json_build_object(
                   'kind', 'skipped', 'of', 'prediction', 'model', coalesce(m.name, t.model_id::text),
                   'first', min(t.first), 'last', max(t.last), 'counts', json_object_agg(t.tag, t.n)
               )::text,
               max(t.last)
        FROM counted AS t
        LEFT JOIN coinfleet_models AS m ON m.id = t.model_id
        GROUP BY t.model_id, m.name
        ORDER BY rank
    LOOP
        PERFORM pg_notify('coinfleet_stream', note.payload);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION coinfleet_stream_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    note record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM coinfleet_stream_watch WHERE until > now()) THEN
        RETURN NULL;
    END IF;
    FOR note IN
        WITH ranked AS (
            SELECT n.id, n.model_id, n.mint, n.metric_ts, n.tag, n.state, n.prediction_id, n.created_at,
                   coalesce(m.name, n.model_id::text) AS model,
                   row_number() OVER (PARTITION BY n.model_id ORDER BY n.id) AS nth
            FROM coinfleet_new_stream_alerts AS n
            LEFT JOIN coinfleet_models AS m ON m.id = n.model_id
        ), lines AS (
            SELECT r.model_id, r.model, r.tag, r.id,
                   CASE WHEN r.nth <= 250 THEN json_build_object(
                       'kind', 'alert', 'id', r.id, 'model', r.model, 'mint', r.mint, 'metric_ts', r.metric_ts,
                       'tag', r.tag, 'state', r.state, 'prediction_id', r.prediction_id, 'created_at', r.created_at
                   )::text END AS line
            FROM ranked AS r
        ), marked AS (
            SELECT l.*, coalesce(octet_length(l.line) <= 1000, false) AS sent FROM lines AS l
        ), chunked AS (
            SELECT k.*, sum(octet_length(k.line) + 1) OVER (PARTITION BY k.model_id, k.tag ORDER BY k.id) AS upto
            FROM marked AS k
            WHERE k.sent
        ), counted AS (
            SELECT k.model_id, k.model, k.tag, count(*) AS n, min(k.id) AS first, max(k.id) AS last
            FROM marked AS k
            WHERE NOT k.sent
            GROUP BY k.model_id, k.model, k.tag
        )
        SELECT format('alert alert %s %s -', c.model, c.tag) || E'\n' || string_agg(c.line, E'\n' ORDER BY c.id)
                   AS payload,
               min(c.id) AS rank
        FROM chunked AS c
        GROUP BY c.model_id, c.model, c.tag, (c.upto - 1) / 6000
        UNION ALL
        SELECT format('skipped alert %s - -', t.model) || E'\n' || json_build_object(
                   'kind', 'skipped', 'of', 'alert', 'model', t.model, 'first', min(t.first),
                   'last', max(t.last), 'counts', json_object_agg(t.tag, t.n)
               )::text,
               max(t.last)
        FROM counted AS t
        GROUP BY t.model_id, t.model
        ORDER BY rank
    LOOP
        PERFORM pg_notify('coinfleet_stream', note.payload);
    END LOOP;
    RETURN NULL;
END
$$;
