"""Names that never change at run time."""

#: a model's alert threshold unless its settings say otherwise: p ≥ this → alert (the predecessor's default)
DEFAULT_ALERT_THRESHOLD = 0.7
#: a model's weight (share of execution slots and evaluation quota) unless its settings say otherwise
DEFAULT_WEIGHT = 1.0

#: NOTIFY channel the coin_metrics trigger signals once per INSERT statement
EVENTS_CHANNEL = "coinfleet_events"
#: NOTIFY channel signalled when a model row changes (settings, status, new model)
MODELS_CHANNEL = "coinfleet_models"
#: NOTIFY channel signalled when a worker joins, leaves or comes back, or a model's lease is released
LEASES_CHANNEL = "coinfleet_leases"
#: NOTIFY channel signalled when webhook alerts are queued or put back for retry
ALERTS_CHANNEL = "coinfleet_alerts"
#: advisory lock key held while migrations run (any two processes may migrate at once)
MIGRATION_LOCK_KEY = 7_120_001
#: name of the database the embedded server serves by default
DEFAULT_DATABASE = "coinfleet"
#: NOTIFY channel the live stream listens on: one message per statement that stored predictions or alerts
STREAM_CHANNEL = "coinfleet_stream"
#: file under COINFLEET_HOME holding the generated API token when COINFLEET_API_TOKEN is unset
API_TOKEN_FILE = "api-token"
#: SQLSTATE a lane's store raises when the stored cursor is not where the lane left it (a crash lost
#: commits that were not flushed yet); the lane reloads its cursor
CURSOR_MOVED_SQLSTATE = "CF001"
#: advisory lock namespace (first key; the model id is the second) serialising claims on one model's alerts
ALERT_CLAIM_LOCK_SPACE = 7_120_014
