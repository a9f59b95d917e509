-- name: renew_worker --
-- Announce worker $1 (host $2, pid $3, capacity $4) as alive for $5 more seconds; NOTIFY the lease
-- channel when it was not alive before (it joined, or came back after a stall), so others rebalance.
WITH before AS (
    SELECT expires_at > now() AS live FROM coinfleet_workers WHERE id = $1
), renewed AS (
    INSERT INTO coinfleet_workers (id, host, pid, capacity, expires_at)
    VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
    ON CONFLICT (id) DO UPDATE SET
        heartbeat_at = now(), expires_at = excluded.expires_at, capacity = excluded.capacity
)
SELECT pg_notify('coinfleet_leases', $1) FROM (SELECT 1) AS one
WHERE NOT coalesce((SELECT live FROM before), false)

-- name: live_workers --
-- The workers whose heartbeat is current, with their capacity, in id order.
SELECT id, capacity FROM coinfleet_workers WHERE expires_at > now() ORDER BY id

-- name: leave_worker --
-- Worker $1 stops: its leases are released at once, its row is gone, and the others rebalance.
WITH released AS (
    UPDATE coinfleet_leases SET owner = NULL, expires_at = now() WHERE owner = $1
), gone AS (
    DELETE FROM coinfleet_workers WHERE id = $1
)
SELECT pg_notify('coinfleet_leases', $1)

-- name: forget_dead_workers --
-- Drop the rows of workers whose heartbeat stopped more than $1 seconds ago (killed, never left).
DELETE FROM coinfleet_workers WHERE expires_at < now() - make_interval(secs => $1)

-- name: ensure_cursor --
-- Give model $1 a cursor at the current horizon unless it has one (never moves an existing cursor).
INSERT INTO coinfleet_cursors (model_id, tx, seq)
VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()), 0)
ON CONFLICT (model_id) DO NOTHING

-- name: acquire_lease --
-- Take model $1's lease for worker $2 for $3 seconds when it is free (never taken, released, expired,
-- or $2's own), with the next epoch, and copy that epoch to the model's cursor row: from then on only
-- batches of this epoch move the cursor (the cursor row's lock orders this against a store in flight).
-- Returns the epoch, or nothing when another worker holds the lease.
WITH taken AS (
    INSERT INTO coinfleet_leases AS l (model_id, owner, epoch, expires_at)
    VALUES ($1, $2, 1, now() + make_interval(secs => $3))
    ON CONFLICT (model_id) DO UPDATE SET
        owner = excluded.owner, epoch = l.epoch + 1, acquired_at = now(), heartbeat_at = now(),
        expires_at = excluded.expires_at
    WHERE l.owner IS NULL OR l.owner = excluded.owner OR l.expires_at <= now()
    RETURNING l.model_id, l.epoch
)
UPDATE coinfleet_cursors AS c SET lease_epoch = t.epoch
FROM taken AS t WHERE c.model_id = t.model_id
RETURNING t.epoch

-- name: renew_leases --
-- Extend worker $1's leases of models $2 at epochs $3 by $4 seconds; returns the models still held
-- (a lease another worker took meanwhile has a newer epoch and is not renewed).
UPDATE coinfleet_leases AS l SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $4)
FROM unnest($2::int4[], $3::int8[]) AS m (model_id, epoch)
WHERE l.model_id = m.model_id AND l.owner = $1 AND l.epoch = m.epoch
RETURNING l.model_id

-- name: release_lease --
-- Worker $1 gives up model $2's lease of epoch $3 (its lane has stopped); the others are told.
WITH released AS (
    UPDATE coinfleet_leases SET owner = NULL, expires_at = now()
    WHERE model_id = $2 AND owner = $1 AND epoch = $3
    RETURNING model_id
)
SELECT pg_notify('coinfleet_leases', $1) FROM released

-- name: list_leases --
-- Every model's lease: owner (NULL when released), epoch and whether it is current.
SELECT model_id, owner, epoch, expires_at > now() AS current FROM coinfleet_leases ORDER BY model_id
