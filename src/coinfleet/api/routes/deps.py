"""Dependencies the routes share."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Path, Request

from coinfleet.api.state import pool
from coinfleet.config import Settings

#: the API's connection pool
Pool = Annotated[asyncpg.Pool, Depends(pool)]
#: a model name in the path
ModelName = Annotated[str, Path(description="the model's name", max_length=200)]


def settings(request: Request) -> Settings:
    """The process settings the app was made with."""
    value: Settings = request.app.state.settings
    return value


#: the process settings (webhook defaults, SSRF rule)
AppSettings = Annotated[Settings, Depends(settings)]
