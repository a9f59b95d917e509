"""A compiled model is stored by artifact hash, so a restart serves it without converting again."""

from __future__ import annotations

import asyncpg
import pytest

from coinfleet.models import compile as compiling
from coinfleet.models.bundle import ModelBundle


async def test_the_compiled_graph_is_reused_after_a_restart(
    pool: asyncpg.Pool, small_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await compiling.served_form(
        pool,
        name="cached",
        fmt=small_bundle.format,
        artifact=small_bundle.artifact,
        sha256="abc",
        n_features=len(small_bundle.features),
    )
    assert first.compiled

    async def no_compiling(*args: object, **kwargs: object) -> tuple[compiling.Served, bool]:
        raise AssertionError("compiled again")

    monkeypatch.setattr(compiling, "compile_in_sandbox", no_compiling)
    again = await compiling.served_form(
        pool,
        name="cached",
        fmt=small_bundle.format,
        artifact=small_bundle.artifact,
        sha256="abc",
        n_features=len(small_bundle.features),
    )
    assert again == first
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM coinfleet_compiled") == 1
