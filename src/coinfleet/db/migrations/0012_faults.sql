-- Keeping running through faults and bad input.
--
-- A lane's store moves its model's cursor only from where the lane believes it is: a crash that lost
-- commits not yet flushed (lanes commit without waiting for the WAL flush) rolls the stored cursor
-- back behind the lane's copy, and the lane's next store must fail rather than skip those events.
CREATE FUNCTION coinfleet_checked_cursor_tx(
    model_id integer, stored_tx xid8, stored_seq bigint, expected_tx xid8, expected_seq bigint, new_tx xid8
) RETURNS xid8
LANGUAGE plpgsql AS $$
BEGIN
    IF expected_tx IS NOT NULL AND (stored_tx <> expected_tx OR stored_seq <> expected_seq) THEN
        RAISE EXCEPTION 'the cursor of model % is at (%, %), not at (%, %) where its lane left it',
            model_id, stored_tx, stored_seq, expected_tx, expected_seq
            USING ERRCODE = 'CF001', HINT = 'the lane reloads its cursor and scores from there';
    END IF;
    RETURN new_tx;
END
$$;

-- Events a lane did not score for one model, and why: a metric row that makes the model fail while
-- its neighbours score ('model_failed'), or a row dated ahead of the wall clock or at ±infinity
-- ('bad_time'). The cursor passes them in the same transaction, so resuming never meets them again.
CREATE TABLE coinfleet_set_aside (
    model_id   integer     NOT NULL,
    event_tx   xid8        NOT NULL,
    event_seq  bigint      NOT NULL,
    mint       text        NOT NULL,
    metric_ts  timestamptz NOT NULL,
    reason     text        NOT NULL CHECK (reason IN ('model_failed', 'bad_time')),
    detail     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, event_tx, event_seq)
);
