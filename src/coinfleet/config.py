"""All settings of coinfleet: one pydantic-settings class, read once in main and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """Where coinfleet keeps its data: /var/lib/coinfleet as root, the platform data dir otherwise.

    The embedded PostgreSQL opens every parent of its data directory for reading, so as root the
    data must not live under /root.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/coinfleet")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coinfleet"


class Settings(BaseSettings):
    """Process-wide settings from the environment (prefix COINFLEET_) or a .env file."""

    model_config = SettingsConfigDict(env_prefix="COINFLEET_", env_file=".env", extra="ignore")

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
    #: default webhook URL for models without their own
    default_webhook_url: str | None = None

    @property
    def pgdata(self) -> Path:
        """Data directory of the embedded PostgreSQL."""
        return self.home / "pgdata"
