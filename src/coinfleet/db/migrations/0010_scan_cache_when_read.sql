-- A model whose rules read no scan cache (no minimum scan interval, ignore window or log limit) keeps
-- none: its lanes do not write it. The cursor row says whether the cache holds every stored prediction
-- (false once a lane stored without it; a lane whose rules read it rebuilds it from the predictions
-- first), and carries the model's totals, which the webhook payload took from the cache's counters.
ALTER TABLE coinfleet_cursors
    ADD COLUMN scan_cache_complete boolean NOT NULL DEFAULT true,
    ADD COLUMN stored_predictions bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_prediction_at timestamptz;

UPDATE coinfleet_cursors AS c
SET stored_predictions = s.total, last_prediction_at = s.last_scan_ts
FROM (
    SELECT model_id, sum(stored_negative + stored_positive + stored_alert) AS total,
           max(last_scan_ts) AS last_scan_ts
    FROM coinfleet_scan_state GROUP BY model_id
) AS s
WHERE s.model_id = c.model_id;
