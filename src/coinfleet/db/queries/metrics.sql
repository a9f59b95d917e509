-- name: fetch_windows --
-- For each (coin, time, after): the coin's last $4 rows at or before that time and later than `after`
-- (all of them when `after` is NULL), when `after` is NULL its first time ever, and whether it has rows
-- after that time.
SELECT k.i, f.first_seen, f.has_newer, m.*
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS k (mint, ts, after, i)
CROSS JOIN LATERAL (
    SELECT (SELECT min(c."timestamp") FROM coin_metrics c
            WHERE c.mint = k.mint AND k.after IS NULL AND c."timestamp" > '-infinity') AS first_seen,
           EXISTS (SELECT FROM coin_metrics c WHERE c.mint = k.mint AND c."timestamp" > k.ts) AS has_newer
) AS f
CROSS JOIN LATERAL (
    SELECT c.mint, c."timestamp", c.phase_id_at_time,
           c.price_open::float8, c.price_high::float8, c.price_low::float8, c.price_close::float8,
           c.market_cap_close::float8, c.volume_sol::float8, c.buy_volume_sol::float8,
           c.sell_volume_sol::float8, c.num_buys::int, c.num_sells::int, c.unique_wallets::int,
           c.dev_sold_amount::float8, c.buy_pressure_ratio::float8, c.whale_buy_volume_sol::float8,
           c.whale_sell_volume_sol::float8, c.volatility_pct::float8, c.unique_signer_ratio::float8,
           c.net_volume_sol::float8
    FROM coin_metrics c
    WHERE c.mint = k.mint AND c."timestamp" <= k.ts AND c."timestamp" > coalesce(k.after, '-infinity')
    ORDER BY c."timestamp" DESC
    LIMIT $4
) AS m
ORDER BY k.i, m."timestamp"

-- name: count_metrics --
-- Rows in coin_metrics.
SELECT count(*) FROM coin_metrics

-- name: read_metrics_since --
-- Every coin_metrics row at or after a time, oldest first (training input).
SELECT mint, "timestamp", phase_id_at_time,
       price_open::float8, price_high::float8, price_low::float8, price_close::float8,
       market_cap_close::float8, volume_sol::float8, buy_volume_sol::float8, sell_volume_sol::float8,
       num_buys::int, num_sells::int, unique_wallets::int, dev_sold_amount::float8,
       buy_pressure_ratio::float8, whale_buy_volume_sol::float8, whale_sell_volume_sol::float8,
       volatility_pct::float8, unique_signer_ratio::float8, net_volume_sol::float8
FROM coin_metrics
WHERE "timestamp" >= $1
ORDER BY "timestamp"

-- name: metrics_stored --
-- Whether any of the rows named by coin ($1) and time ($2) is stored: a replay's write cut short by an
-- outage committed all of its rows or none.
SELECT EXISTS (
    SELECT 1 FROM unnest($1::text[], $2::timestamptz[]) AS r (mint, ts)
    JOIN coin_metrics AS m ON m.mint = r.mint AND m."timestamp" = r.ts
)
