-- Outcomes are judged as of the horizon end (the coin's last row at or before it, once the feed shows
-- it was alive after the end); before, the coin's first row in [end, end + grace]. Every outcome keeps
-- the rule it was judged by: the ones stored before this migration are marked, none is re-judged or
-- dropped (their coin_metrics rows may be gone, and a stored outcome never changes silently).
ALTER TABLE coinfleet_evaluations
    ADD COLUMN rule text NOT NULL DEFAULT 'first_row_in_grace'
    CHECK (rule IN ('as_of', 'first_row_in_grace'));
ALTER TABLE coinfleet_evaluations ALTER COLUMN rule SET DEFAULT 'as_of';
