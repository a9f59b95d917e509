"""Webhook signing secrets: one per model, generated at creation, replaced from a file, env or stdin.

A secret never travels on a command line (shell history, the process list) and never sits in the
model settings, which are shown, logged and returned by interfaces.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TextIO

import asyncpg

from coinfleet.db.sql import query
from coinfleet.errors import SettingError

MIN_SECRET_CHARS = 16  #: a shorter secret can be guessed offline from one signed request


def generate() -> str:
    """A new random secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def checked(secret: str) -> str:
    """The secret without surrounding whitespace; SettingError when it is too short."""
    text = secret.strip()
    if len(text) < MIN_SECRET_CHARS:
        raise SettingError(
            f"a webhook secret needs at least {MIN_SECRET_CHARS} characters (got {len(text)}); "
            "`openssl rand -hex 32` makes a good one"
        )
    return text


def from_file(path: Path) -> str:
    """The secret stored in a file (its first line)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SettingError(f"cannot read the secret file {str(path)!r}: {exc.strerror}") from None
    return checked(text.splitlines()[0] if text.strip() else "")


def from_env(name: str) -> str:
    """The secret in an environment variable."""
    value = os.environ.get(name)
    if value is None:
        raise SettingError(f"the environment variable {name!r} is not set")
    return checked(value)


def from_stdin(stream: TextIO = sys.stdin) -> str:
    """The secret on standard input (its first line)."""
    return checked(stream.readline())


async def get(conn: asyncpg.Connection, model_id: int) -> str:
    """A model's secret (every model has one)."""
    secret: str | None = await conn.fetchval(query("get_webhook_secret"), model_id)
    if secret is None:
        raise SettingError(f"model {model_id} has no webhook secret; `coinfleet db migrate` gives it one")
    return secret


async def replace(conn: asyncpg.Connection, model_id: int, secret: str) -> None:
    """Give a model a new secret; the next attempt is signed with it."""
    await conn.execute(query("set_webhook_secret"), model_id, checked(secret))
