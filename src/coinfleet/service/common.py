"""What every service module needs: the database handle, page cursors, model lookup by name."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import asyncpg

from coinfleet.errors import InvalidRequest
from coinfleet.models import registry

T = TypeVar("T")
#: a pool or one connection: every read runs on either (a pool lends a connection per statement)
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
#: the key after the last row of the first page: every id is below it
FIRST_PAGE = 2**63 - 1
_CURSOR_PREFIX = "id:"


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the page after the row with this id."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id a page continues below; InvalidRequest for a cursor this module did not make."""
    if cursor is None:
        return FIRST_PAGE
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX):
            last_id = int(text.removeprefix(_CURSOR_PREFIX))
            if 0 <= last_id <= FIRST_PAGE:
                return last_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidRequest(f"cursor {cursor!r} is not valid; pass the next_cursor of the page before, or none")


def split_page(items: list[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], str | None]:
    """A page of `limit` items and the cursor after it, from a read of `limit + 1` rows (newest first);
    the cursor is None when no row follows."""
    if len(items) <= limit:
        return items, None
    page = items[:limit]
    return page, encode_cursor(key(page[-1]))


@asynccontextmanager
async def connection(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """One connection for work that needs a transaction: `db` itself, or one lent by the pool."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def model_id_of(db: Db, name: str | None) -> int | None:
    """The id of the model called `name` (None for None); ModelNotFound when there is none."""
    if name is None:
        return None
    return (await registry.get(db, name)).id


def as_dict(row: Any) -> dict[str, Any]:
    """A record's columns as a dict."""
    return dict(row.items())


def rate(hits: int, total: int) -> float | None:
    """hits / total, None when nothing was counted."""
    return hits / total if total else None
