-- A time sent as microseconds since the Unix epoch, as lanes send their batches' times (an int8 in a
-- two-dimensional array costs the client a fraction of what encoding a timestamp does). Exact for every
-- time timestamptz holds: whole seconds and the microseconds left over are added separately.
CREATE FUNCTION coinfleet_from_epoch_us(us bigint) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN to_timestamp(us / 1000000) + (us % 1000000) * interval '1 microsecond';
