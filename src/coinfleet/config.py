"""All settings of coinfleet: one pydantic-settings class, read once in main and passed down."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, PositiveInt, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from coinfleet.settings_text import accepted

ENV_PREFIX = "COINFLEET_"


def default_home() -> Path:
    """Where coinfleet keeps its data: /var/lib/coinfleet as root, the platform data dir otherwise.

    The embedded PostgreSQL opens every parent of its data directory for reading, so as root the
    data must not live under /root.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/coinfleet")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coinfleet"


def _json_list(value: Any) -> Any:
    """A list setting as the environment gives it, JSON text, parsed here (not by pydantic-settings, whose
    error for bad JSON names neither the variable nor what it expects)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ValueError("not a JSON list") from None


class Settings(BaseSettings):
    """Process-wide settings from the environment (prefix COINFLEET_) or a .env file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    #: folder for the embedded database, demo models and caches
    home: Path = Field(default_factory=default_home)
    #: a PostgreSQL URL; when set, the embedded server is not used
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "COINFLEET_DATABASE_URL")
    )
    #: log format: readable console lines, or one JSON object per line
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: seconds between cursor polls when no NOTIFY arrives
    poll_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    #: most events one lane takes into one batch
    batch_max_events: int = Field(default=2000, ge=1, le=100_000)
    #: seconds between prunes of events that every cursor has passed
    prune_interval_seconds: float = Field(default=30.0, gt=0)
    #: size of the connection pool of one process
    pool_max_size: int = Field(default=10, ge=2, le=200)
    #: execution slots shared by the runners of one process (0: one per CPU core)
    execution_slots: int = Field(default=0, ge=0, le=256)
    #: a runner call still holding a slot after this many seconds gives it back (slow or hanging models)
    slot_quantum_seconds: float = Field(default=0.025, gt=0, le=60)
    #: default webhook URL for models without their own
    default_webhook_url: str | None = None
    #: allow webhook URLs that resolve to private, loopback or link-local addresses (tests, LANs)
    webhook_allow_private: bool = False
    #: seconds one webhook request may take to connect, send and answer
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    #: an alert still undelivered this many seconds after it was queued is marked dead (only age
    #: and a permanent refusal kill an alert; attempts are never counted against it)
    webhook_max_age_seconds: float = Field(default=86_400.0, gt=0)
    #: a failing receiver is probed again after this delay, doubled per failure in a row up to the cap
    webhook_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    #: longest pause between two probes of a down receiver (before jitter)
    webhook_backoff_max_seconds: float = Field(default=60.0, gt=0)
    #: up to this many random seconds added to each probe delay
    webhook_backoff_jitter_seconds: float = Field(default=1.0, ge=0)
    #: most webhook requests one process has in flight at once, over all models
    webhook_max_concurrency: int = Field(default=64, ge=1, le=1000)
    #: most webhook requests one model has in flight at once, never two for one coin (1: the model's
    #: alerts arrive strictly in queue order; more: each coin's alerts do)
    webhook_in_flight_per_model: int = Field(default=1, ge=1, le=32)
    #: database connections of one process's alert delivery (its own pool, beside the lanes' one)
    webhook_connections: int = Field(default=4, ge=2, le=64)
    #: days the per-attempt delivery log and delivered alerts are kept
    webhook_log_retention_days: float = Field(default=14.0, gt=0)
    #: data seconds after a prediction's horizon end in which some row of any coin must show that the feed
    #: was alive (else "no_data"); also how long a prediction waits for that
    evaluation_grace_seconds: float = Field(default=120.0, ge=0, le=86_400)
    #: a metric row dated more than this many seconds ahead of the wall clock (or at ±infinity) is not
    #: scored and never counts as "now": lanes set it aside, evaluation's clock stops there
    future_tolerance_seconds: float = Field(default=30.0, ge=0, le=86_400)
    #: seconds between two drift computations of every active model in `serve` and `worker` (the PSI
    #: gauges, and a `model_drift` log line per model); 0: never
    drift_refresh_seconds: float = Field(default=600.0, ge=0)
    #: seconds between evaluation rounds when the last round found nothing to do
    evaluation_interval_seconds: float = Field(default=1.0, gt=0, le=600)
    #: due predictions one model of weight 1 gets evaluated per round (scaled by the model's weight)
    evaluation_base_quota: int = Field(default=20_000, ge=1, le=10_000_000)
    #: wall seconds without new metric rows after which the wall clock may settle stale predictions
    evaluation_feed_stall_seconds: float = Field(default=300.0, gt=0)
    #: connections one process evaluates with at once (claims never overlap: SKIP LOCKED)
    evaluation_connections: int = Field(default=2, ge=1, le=64)
    #: where models run: a child process per model, or inside this process (tests, tiny setups)
    runner: Literal["process", "inline"] = "process"
    #: a model is quarantined after this many failed batches among its last 20
    runner_max_failures: int = Field(default=5, ge=1, le=1000)
    #: serve sklearn / XGBoost / LightGBM models as verified ONNX graphs where the converters allow
    runner_compile_onnx: bool = True
    #: durability of the lanes' commits (PostgreSQL's synchronous_commit on their connections): "off"
    #: does not wait for the WAL flush, so a database crash may lose the last fraction of a second of
    #: batches, each whole (predictions, cursor and outbox rows together), which the lanes score again;
    #: "on" waits for the flush of every batch (slower under load, nothing to score again)
    lane_synchronous_commit: Literal["off", "local", "remote_write", "on", "remote_apply"] = "off"
    #: the garbage collector's thresholds in a serving process (generation 0, 1, 2): a lane batch makes
    #: thousands of short-lived objects that reference counting frees; with Python's default 700, young
    #: collections walked them mid-batch (7 % of the serving process at 30,000 predictions/s)
    gc_thresholds: Annotated[
        tuple[PositiveInt, PositiveInt, PositiveInt], NoDecode, BeforeValidator(_json_list)
    ] = (50_000, 20, 100)
    #: after a lane starts, freeze what is alive (libraries and loaded models live as long as the
    #: process): full collections skip it (they walked ~190,000 such objects: 110 ms pauses)
    gc_freeze: bool = True
    #: seconds a model's lease lasts without a heartbeat (renewed every third of it): a dead worker's
    #: models move to the others after at most this long
    lease_seconds: float = Field(default=10.0, ge=0.5, le=600)
    #: this process's share of the models against other workers' (0: its number of CPU cores)
    worker_capacity: float = Field(default=0, ge=0, le=10_000)
    #: largest model file (MB) coinfleet reads, imports or stores
    model_max_mb: int = Field(default=512, ge=1, le=16_384)
    #: seconds a child process may take to load, check and compile one model file before it is refused
    model_check_timeout_seconds: float = Field(default=600.0, gt=0, le=86_400)
    #: memory (MB) a child checking or compiling a model file may use beyond the libraries it imports
    model_check_memory_mb: int = Field(default=4096, ge=64, le=262_144)

    #: address the HTTP API, UI, MCP and /metrics listen on (non-loopback: reads need the token too)
    api_host: str = "127.0.0.1"
    #: TCP port of the HTTP side
    api_port: int = Field(default=8000, ge=0, le=65_535)
    #: bearer token for the API and MCP; when unset, one is generated once and kept under `home`
    api_token: SecretStr | None = None
    #: events one live-stream client may have waiting; a client that falls this far behind is cut off
    api_stream_queue: int = Field(default=1000, ge=1, le=100_000)
    #: database connections the HTTP side uses at most: its queries never take more cores than this
    api_pool_size: int = Field(default=2, ge=2, le=100)

    @property
    def pgdata(self) -> Path:
        """Data directory of the embedded PostgreSQL."""
        return self.home / "pgdata"


def settings_error_message(exc: ValidationError | SettingsError) -> str:
    """Why the settings could not be read, as one line: each bad variable with its value, what is wrong
    and what it accepts (its default too), and what to do."""
    if isinstance(exc, SettingsError):  # a value the settings source itself could not parse
        return f"{exc} — fix or unset that {ENV_PREFIX}* variable (environment or .env)"
    by_variable: dict[str, list[ErrorDetails]] = {}
    for error in exc.errors():
        by_variable.setdefault(str(error["loc"][0]) if error["loc"] else "", []).append(error)
    variables = [_variable(field) for field in by_variable]
    problems = [_problem(field, errors) for field, errors in by_variable.items()]
    return f"{'; '.join(problems)} — fix or unset {'/'.join(variables)} (environment or .env)"


def _variable(field: str) -> str:
    """The environment variable of a field (or the alias the error names, e.g. DATABASE_URL)."""
    return field if field.isupper() else f"{ENV_PREFIX}{field.upper()}"


def _problem(field: str, errors: list[ErrorDetails]) -> str:
    variable = _variable(field)
    raw = os.environ.get(variable, errors[0]["input"] if len(errors[0]["loc"]) == 1 else None)
    given = f"{variable}={raw!r}" if raw is not None else variable
    wrong = ", ".join(_what_is_wrong(error) for error in errors)
    schema = Settings.model_json_schema()["properties"].get(field)
    if schema is None:
        return f"{given}: {wrong}"
    expected = f"{given}: {wrong}; expected {accepted(schema)}"
    return f"{expected}, default {_as_typed(schema['default'])}" if "default" in schema else expected


def _as_typed(value: Any) -> str:
    """A setting's value as one would write it in the environment: `[50000, 20, 100]`, `true`, `info`."""
    return value if isinstance(value, str) else json.dumps(value)


def _what_is_wrong(error: ErrorDetails) -> str:
    """Pydantic's message for one error, about the value or (in a list) its n-th item."""
    message = "not a list" if error["type"] == "tuple_type" else error["msg"].removeprefix("Value error, ")
    item = error["loc"][1:]
    if not item:
        return message[:1].lower() + message[1:]
    which = f"value {item[0] + 1}" if isinstance(item[0], int) else str(item[0])
    if error["type"] == "missing":
        return f"{which} is missing"
    return f"{which}: {message[:1].lower() + message[1:]}"
