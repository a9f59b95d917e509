"""Manual scoring: what each model says about a coin now (or at a past time); nothing is stored."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import structlog
from pydantic import AwareDatetime, BaseModel

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest, NotFound
from coinfleet.features.cache import ObservationService, feature_indices
from coinfleet.lanes.rules import tag_for
from coinfleet.models import registry
from coinfleet.models.registry import ModelRecord
from coinfleet.service.scoring_child import CACHED_MODELS, ModelFiles, ModelKey, ScoringChild

log = structlog.get_logger(__name__)


class ModelScore(BaseModel):
    """One model's answer for the coin."""

    model: str
    probability: float  #: P(target reached), 0..1
    tag: str  #: negative / positive / alert, by the model's alert threshold
    alert_threshold: float


class CoinScore(BaseModel):
    """Every asked model's answer at the coin's metric row."""

    mint: str
    metric_ts: AwareDatetime  #: time of the metric row that was scored (the newest at or before `at`)
    scores: list[ModelScore]


class Scorer:
    """Scores coins with registered models; the models run in a child process below the lanes'
    priority (`ScoringChild`), which keeps recently used ones loaded."""

    def __init__(self, pool: asyncpg.Pool, *, future_tolerance_seconds: float = 30.0) -> None:
        self._pool = pool
        #: rows dated further ahead of the wall clock are never "now" (Settings.future_tolerance_seconds)
        self._future_tolerance = future_tolerance_seconds
        self._observations = ObservationService(pool, cache_size=1000, coin_cache_size=100)
        self._child = ScoringChild()
        self._warming: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the scoring child and have it load the active models, in the background (at its low
        priority), so that requests find them loaded."""
        self._child.start()
        self._warming = asyncio.create_task(self._warm(), name="scoring-warm-up")

    def close(self) -> None:
        """Stop the warm-up and the scoring child."""
        if self._warming is not None:
            self._warming.cancel()
        self._child.close()

    async def _warm(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                active = (await _chosen_models(conn, None))[:CACHED_MODELS]
                files = {
                    (m.id, m.version): (m.format, await registry.load_artifact(conn, m.id)) for m in active
                }
            await self._child.load(files)
        except Exception as exc:  # e.g. the database is away at start: requests load what they need
            log.info("scoring_warm_up_skipped", error=str(exc))

    async def score(
        self, mint: str, *, at: datetime | None = None, models: list[str] | None = None
    ) -> CoinScore:
        """Each model's probability and tag for the coin's newest row at or before `at` (now when None);
        every active model unless `models` names some. Stores nothing."""
        if at is not None and at.tzinfo is None:
            raise InvalidRequest(f"time {at} has no time zone; give an aware time, e.g. ...+00:00")
        async with self._pool.acquire() as conn:
            ts = await conn.fetchval(query("latest_metric_time"), mint, at, self._future_tolerance)
            chosen = await _chosen_models(conn, models)
        if ts is None:
            raise NotFound(f"coin {mint!r} has no metric row at or before {at or 'now'}")
        (observation,) = await self._observations.observe([(mint, ts)])
        assert observation is not None  # the row exists: it was just read
        by_key = {(m.id, m.version): m for m in chosen}
        asked = [
            (key, observation.features[feature_indices(m.features)].reshape(1, -1))
            for key, m in by_key.items()
        ]

        async def files(keys: list[ModelKey]) -> ModelFiles:
            async with self._pool.acquire() as conn:
                return {key: (by_key[key].format, await registry.load_artifact(conn, key[0])) for key in keys}

        answers = await self._child.predict(asked, files)
        scores = [_score(model, answer[0]) for model, answer in zip(by_key.values(), answers, strict=True)]
        return CoinScore(mint=mint, metric_ts=ts, scores=scores)


def _score(model: ModelRecord, probability: float) -> ModelScore:
    threshold = model.settings.alert_threshold
    return ModelScore(
        model=model.name, probability=probability, tag=str(tag_for(probability, threshold)),
        alert_threshold=threshold,
    )  # fmt: skip


async def _chosen_models(conn: asyncpg.Connection, names: list[str] | None) -> list[ModelRecord]:
    if names:
        return [await registry.get(conn, name) for name in dict.fromkeys(names)]
    return [m for m in await registry.list_models(conn) if m.status == "active"]
