"""Manual scoring: what each model says about a coin now (or at a past time); nothing is stored."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import datetime

import asyncpg
import numpy as np
from pydantic import AwareDatetime, BaseModel

from coinfleet.db.sql import query
from coinfleet.errors import InvalidRequest, NotFound
from coinfleet.features.cache import ObservationService, feature_indices
from coinfleet.lanes.rules import tag_for
from coinfleet.models import registry
from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.models.registry import ModelRecord

#: loaded models kept per process (model id and version): loading costs more than scoring one row
CACHED_MODELS = 32


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
    """Scores coins with registered models in this process, keeping recently used models loaded."""

    def __init__(self, pool: asyncpg.Pool, *, future_tolerance_seconds: float = 30.0) -> None:
        self._pool = pool
        #: rows dated further ahead of the wall clock are never "now" (Settings.future_tolerance_seconds)
        self._future_tolerance = future_tolerance_seconds
        self._observations = ObservationService(pool, cache_size=1000, coin_cache_size=100)
        self._loaded: OrderedDict[tuple[int, int], Predictor] = OrderedDict()

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
        scores = [await self._score_one(model, observation.features) for model in chosen]
        return CoinScore(mint=mint, metric_ts=ts, scores=scores)

    async def _score_one(self, model: ModelRecord, features: np.ndarray) -> ModelScore:
        predictor = await self._predictor(model)
        row = features[feature_indices(model.features)].reshape(1, -1)
        probability = float((await asyncio.to_thread(predictor.predict_proba, row))[0])
        threshold = model.settings.alert_threshold
        return ModelScore(
            model=model.name, probability=probability, tag=str(tag_for(probability, threshold)),
            alert_threshold=threshold,
        )  # fmt: skip

    async def _predictor(self, model: ModelRecord) -> Predictor:
        key = (model.id, model.version)
        if key not in self._loaded:
            async with self._pool.acquire() as conn:
                artifact = await registry.load_artifact(conn, model.id)
            self._loaded[key] = await asyncio.to_thread(load_predictor, model.format, artifact)
            while len(self._loaded) > CACHED_MODELS:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(key)
        return self._loaded[key]


async def _chosen_models(conn: asyncpg.Connection, names: list[str] | None) -> list[ModelRecord]:
    if names:
        return [await registry.get(conn, name) for name in dict.fromkeys(names)]
    return [m for m in await registry.list_models(conn) if m.status == "active"]
