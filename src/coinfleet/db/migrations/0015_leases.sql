-- Scale-out: any number of coinfleet processes share one database, and each model's lane is owned by
-- one of them at a time through a lease. A worker announces itself in coinfleet_workers and renews
-- its row and its leases by heartbeat; a lease whose owner stopped renewing expires and another
-- worker takes it with the next epoch. The epoch is copied to the model's cursor row in the same
-- statement, and a lane's store statement moves the cursor only while the cursor row still holds the
-- lane's epoch (the row lock orders a store and a takeover), so a worker that stalled past its lease
-- cannot write once another took it over.
CREATE TABLE coinfleet_workers (
    id           text             PRIMARY KEY,
    host         text             NOT NULL,
    pid          integer          NOT NULL,
    capacity     double precision NOT NULL CHECK (capacity > 0),
    started_at   timestamptz      NOT NULL DEFAULT now(),
    heartbeat_at timestamptz      NOT NULL DEFAULT now(),
    expires_at   timestamptz      NOT NULL
);

CREATE TABLE coinfleet_leases (
    model_id     integer     PRIMARY KEY REFERENCES coinfleet_models (id),
    owner        text,  -- a coinfleet_workers id; NULL once released
    epoch        bigint      NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

ALTER TABLE coinfleet_cursors ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;

-- Raise SQLSTATE CF409 (a lane's lease was taken over, or its cursor is not where the lane left it or
-- would not move forward) unless every model of a store statement moved its cursor; true otherwise.
CREATE FUNCTION coinfleet_require_moved(wanted integer[], moved integer[]) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(wanted) > coalesce(cardinality(moved), 0) THEN
        RAISE EXCEPTION 'fenced: model(s) % changed owner, or their cursor moved under the batch',
            (SELECT array_agg(w) FROM unnest(wanted) AS w WHERE w <> ALL (coalesce(moved, '{}')))
            USING ERRCODE = 'CF409';
    END IF;
    RETURN true;
END
$$;
