-- Reads of the service layer that would otherwise walk a whole table: a coin's alerts (coin detail) and
-- a model's dead alerts (counted for every model in listings and health). Alerts are written far less
-- often than predictions, and dead ones rarely, so neither index slows the scoring path.
CREATE INDEX coinfleet_alerts_mint_idx ON coinfleet_alerts (mint, metric_ts);
CREATE INDEX coinfleet_alerts_dead_idx ON coinfleet_alerts (model_id, id) WHERE state = 'dead';
