"""The one exception hierarchy of coinfleet; messages say what was wrong and what to do."""


class CoinfleetError(Exception):
    """Base of every error coinfleet raises on purpose."""


class ConfigError(CoinfleetError):
    """A setting or option has a value that cannot work."""


class DatabaseError(CoinfleetError):
    """The database could not be started, reached or migrated."""


class ModelLoadError(CoinfleetError):
    """A model file could not be loaded or failed validation."""


class NotFound(CoinfleetError):
    """The thing a request names does not exist (the API answers 404)."""


class InvalidRequest(CoinfleetError):
    """A request's values cannot work: a bad filter, range, cursor or setting (the API answers 422)."""


class Conflict(CoinfleetError):
    """A request does not fit the current state, e.g. a name taken or nothing to resume (the API answers
    409)."""


class ModelNotFound(NotFound):
    """No model has the given name."""


class AlertNotFound(NotFound):
    """No alert has the given id."""


class ModelExists(Conflict):
    """A model with that name is registered already."""


class SettingError(InvalidRequest):
    """A per-model setting key is unknown or its value is invalid."""


class DataFormatError(CoinfleetError):
    """An input file is not in the expected format."""


class WebhookRefused(CoinfleetError):
    """A webhook URL is not allowed (scheme or address)."""


class Fenced(CoinfleetError):
    """A lane's batch was refused: its lease passed to another worker, or its cursor would not move
    forward. Nothing of the batch was stored; the lane stops and its model starts again from its cursor
    wherever it is owned now."""
