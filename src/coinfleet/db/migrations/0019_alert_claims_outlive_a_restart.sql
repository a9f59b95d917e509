-- An alert's claim names the database session of the worker holding it, and is void at once when that
-- session ends (the worker died). A server restart ends every session while the workers live on: one
-- may hold the receiver's answer to an alert it sent just before, and store it once the server is back.
-- Taking such a claim at once would send the alert a second time; it is kept for a grace period after
-- the server started instead, so that its worker can settle it.

-- When the claim on an alert ends (NULL: it holds no claim, or the claim is void now): its expiry while
-- its session lives; for a session of an earlier server life, the end of the grace period ($4 seconds
-- after this server started); a session that ended while the server ran: void.
CREATE FUNCTION coinfleet_alert_claim_ends(
    claimed_until timestamptz, claimed_pid integer, claimed_backend_start timestamptz, grace float8
) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN claimed_until IS NULL OR claimed_until < now() THEN NULL
        WHEN EXISTS (
            SELECT 1 FROM pg_stat_activity AS s  -- backend_start is hidden from other roles
            WHERE s.pid = claimed_pid AND coalesce(s.backend_start = claimed_backend_start, true)
        ) THEN claimed_until
        WHEN claimed_backend_start < pg_postmaster_start_time()
            THEN least(claimed_until, pg_postmaster_start_time() + make_interval(secs => grace))
    END
$$;

-- Whether the session ($1 pid, $2 backend start) is alive: a claim or an attempt start names only a
-- live session, so nobody else can take the alert while it is being sent.
CREATE FUNCTION coinfleet_session_alive(pid integer, backend_start timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_stat_activity AS s
        WHERE s.pid = $1 AND coalesce(s.backend_start = $2, true)
    )
$$;
