-- name: read_events --
-- Events after a cursor whose transactions have all finished, in (tx, seq) order.
SELECT tx, seq, mint, ts, inserted_at
FROM coinfleet_events
WHERE (tx, seq) > ($1::xid8, $2::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx, seq
LIMIT $3

-- name: current_horizon --
-- The xmin horizon: every transaction below it has finished.
SELECT pg_snapshot_xmin(pg_current_snapshot())

-- name: count_events_after --
-- How many events a cursor is behind (finished or not).
SELECT count(*) FROM coinfleet_events WHERE (tx, seq) > ($1::xid8, $2::bigint)

-- name: oldest_unread_event_ts --
-- Metric time of the oldest event after a cursor, for lag in seconds.
SELECT min(ts) FROM coinfleet_events WHERE (tx, seq) > ($1::xid8, $2::bigint)

-- name: count_events --
-- All events still stored.
SELECT count(*) FROM coinfleet_events

-- name: get_cursor --
-- A model's cursor.
SELECT tx, seq FROM coinfleet_cursors WHERE model_id = $1

-- name: reset_cursor_to_now --
-- Put a model's cursor at the current horizon: it handles events from now on.
INSERT INTO coinfleet_cursors (model_id, tx, seq)
VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()), 0)
ON CONFLICT (model_id) DO UPDATE SET tx = excluded.tx, seq = 0, updated_at = now()

-- name: prune_events --
-- Delete events every active or quarantined model's cursor has passed.
DELETE FROM coinfleet_events e
WHERE (e.tx, e.seq) <= (
    SELECT c.tx, c.seq FROM coinfleet_cursors c
    JOIN coinfleet_models m ON m.id = c.model_id
    WHERE m.status IN ('active', 'quarantined')
    ORDER BY c.tx, c.seq
    LIMIT 1
)

-- name: horizon_age_seconds --
-- Age of the oldest transaction that holds the xmin horizon back (0 when none).
SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL

-- name: read_events_with_rows --
-- read_events, each event with its metric row (the first, should the coin have two at that time; NULL
-- columns and has_row false when the row is gone), so that the feature service needs no read for it.
SELECT e.tx, e.seq, e.mint AS event_mint, e.ts AS event_ts, e.inserted_at, m.mint IS NOT NULL AS has_row, m.*
FROM coinfleet_events e
LEFT JOIN LATERAL (
    SELECT c.mint, c."timestamp", c.phase_id_at_time,
           c.price_open::float8, c.price_high::float8, c.price_low::float8, c.price_close::float8,
           c.market_cap_close::float8, c.volume_sol::float8, c.buy_volume_sol::float8,
           c.sell_volume_sol::float8, c.num_buys::int, c.num_sells::int, c.unique_wallets::int,
           c.dev_sold_amount::float8, c.buy_pressure_ratio::float8, c.whale_buy_volume_sol::float8,
           c.whale_sell_volume_sol::float8, c.volatility_pct::float8, c.unique_signer_ratio::float8,
           c.net_volume_sol::float8
    FROM coin_metrics c
    WHERE c.mint = e.mint AND c."timestamp" = e.ts
    LIMIT 1
) AS m ON true
WHERE (e.tx, e.seq) > ($1::xid8, $2::bigint)
  AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.tx, e.seq
LIMIT $3
