"""A compiled model is stored by artifact hash, so a restart serves it without converting again."""

from __future__ import annotations

import asyncpg
import numpy as np
import numpy.typing as npt
import pytest

from coinfleet.models import compile as compiling
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.formats import load_predictor


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


@pytest.mark.slow
async def test_a_big_forest_is_served_compiled_with_double_sums(pool: asyncpg.Pool) -> None:
    """A forest of ~290k nodes trained on rows with missing values (so its trees hold +inf thresholds,
    on which skl2onnx's double route never finished; its float route took ~15 s for this forest alone)
    compiles in the sandbox, passes the check with double sums and is stored for the next start."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8))
    y = ((x[:, 0] + rng.normal(0, 1.0, len(x))) > 0).astype(np.int64)
    x[rng.random(x.shape) < 0.05] = np.nan
    forest = RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1).fit(x, y)
    assert sum(tree.tree_.node_count for tree in forest.estimators_) > 250_000
    assert any(np.isinf(tree.tree_.threshold).any() for tree in forest.estimators_)
    artifact = skops.io.dumps(forest)
    rows = x[:500].astype(np.float32).astype(np.float64)

    async def real_rows() -> npt.NDArray[np.float64]:
        return rows

    served = await compiling.served_form(
        pool,
        name="big",
        fmt="skops",
        artifact=artifact,
        sha256="big-forest",
        n_features=8,
        real_rows=real_rows,
    )
    assert served.compiled, served.reason
    assert served.max_delta is not None and served.max_delta <= 2**-25  # only the float32 output rounds
    graph, native = load_predictor("onnx", served.artifact), load_predictor("skops", artifact)
    assert np.max(np.abs(graph.predict_proba(rows) - native.predict_proba(rows))) <= 2**-25
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT onnx FROM coinfleet_compiled WHERE artifact_sha256 = 'big-forest'"
        )
    assert stored == served.artifact
