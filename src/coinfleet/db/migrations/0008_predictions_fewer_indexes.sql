-- Two indexes on coinfleet_predictions that no query reads cost a quarter of PostgreSQL's work per
-- stored prediction (store_batch, 20 models × 35-row batches: 40 → 34 µs of backend CPU per prediction).
-- (model_id, created_at) was the dearer one: every row of a batch has the same now(), so each insert
-- merges into a btree posting list. A model's predictions are found through the unique key
-- (model_id, mint, metric_ts), a coin's across models through that key once per model.
DROP INDEX IF EXISTS coinfleet_predictions_model_created_idx;
DROP INDEX IF EXISTS coinfleet_predictions_mint_idx;
