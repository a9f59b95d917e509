"""The predecessor's design, kept as a benchmark baseline: `coinfleet serve --scheduler sequential`.

One loop takes one event at a time and runs it through every model in turn, in process: filters,
features, `predict_proba` for one row, one INSERT. With `fetch_per_model` each model reads the coin's
history again, as the predecessor did; without it, and with `serve_onnx`, the loop uses the lanes'
serving engine (shared features, verified ONNX), which shows what the lane architecture alone buys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import numpy as np

from coinfleet.config import Settings
from coinfleet.constants import EVENTS_CHANNEL
from coinfleet.db.database import Database
from coinfleet.events.cursor import Cursor, Event, current_horizon, events_behind, read_events
from coinfleet.events.notifier import IdlePause, Notifier, Signal
from coinfleet.features.cache import Observation, ObservationService, feature_indices
from coinfleet.lanes.rules import Tag, tag_for
from coinfleet.lanes.serve import run_until
from coinfleet.lanes.stats import LaneStats
from coinfleet.lanes.store import NewPrediction, store_batch
from coinfleet.models import registry
from coinfleet.models.compile import served_model
from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.models.registry import ModelRecord


@dataclass
class _Scored:
    model: ModelRecord
    predictor: Predictor
    columns: np.ndarray
    stats: LaneStats


class SequentialScorer:
    """Every event through every model, one after another."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        signal: Signal,
        fetch_per_model: bool = True,
        poll_interval: float = 2.0,
        serve_onnx: bool = False,
    ) -> None:
        self._pool = pool
        self._signal = signal
        self._fetch_per_model = fetch_per_model
        self._pause = IdlePause(poll_interval)
        self._serve_onnx = serve_onnx
        self._shared = ObservationService(pool)
        self._models: list[_Scored] = []
        self._cursor = Cursor(tx=0, seq=0)
        self._stopping = False

    @property
    def stats(self) -> dict[str, LaneStats]:
        """Counters per model name, shaped like a lane's."""
        return {m.model.name: m.stats for m in self._models}

    def stop(self) -> None:
        """Leave `run` after the current event."""
        self._stopping = True
        self._signal.set()

    async def load(self) -> None:
        """Load every active model once and start at the current horizon."""
        async with self._pool.acquire() as conn:
            active = [m for m in await registry.list_models(conn) if m.status == "active"]
            artifacts = [await registry.load_artifact(conn, m.id) for m in active]
            self._cursor = await current_horizon(conn)
        for model, artifact in zip(active, artifacts, strict=True):
            predictor = await self._predictor(model, artifact)
            self._models.append(_Scored(model, predictor, feature_indices(model.features), LaneStats()))

    async def _predictor(self, model: ModelRecord, artifact: bytes) -> Predictor:
        """The native model as imported, or the verified ONNX graph the lanes serve."""
        if not self._serve_onnx:
            return load_predictor(model.format, artifact)
        served = await served_model(self._pool, model, artifact)
        return load_predictor(served.format, served.artifact)

    async def run(self) -> None:
        """Score events until stopped."""
        while not self._stopping:
            async with self._pool.acquire() as conn:
                events = await read_events(conn, self._cursor, 1)
                held_back = not events and await events_behind(conn, self._cursor) > 0
            self._shared.windows.follow(events)
            if not events:
                await self._signal.wait(self._pause.seconds(held_back=held_back))
                continue
            self._pause.reset()
            for model in self._models:
                await self._score(model, events[0])
            self._cursor = events[0].cursor

    async def _score(self, scored: _Scored, event: Event) -> None:
        observation = await self._observe(event)
        if observation is None:
            return
        row = observation.features[scored.columns].astype(np.float32)[np.newaxis, :]
        probability = float(scored.predictor.predict_proba(row)[0])  # blocking, as the predecessor did
        tag = tag_for(probability, scored.model.settings.alert_threshold)
        prediction = NewPrediction(event=event, row=observation.row, probability=probability, tag=tag)
        async with self._pool.acquire() as conn:
            await store_batch(conn, scored.model, [prediction], {}, event.cursor, keeps_scan_cache=False)
        self._count(scored.stats, event, tag, probability)

    async def _observe(self, event: Event) -> Observation | None:
        key = (event.mint, event.ts)
        if self._fetch_per_model:
            return (await ObservationService(self._pool, cache_size=1).observe([key]))[0]
        return (await self._shared.observe([key]))[0]

    @staticmethod
    def _count(stats: LaneStats, event: Event, tag: Tag, probability: float) -> None:
        stats.events += 1
        stats.scored += 1
        stats.predictions[tag.value] += 1
        stats.last_probability = probability
        stats.record_latencies(np.array([event.inserted_at.timestamp()]), datetime.now(UTC).timestamp())


def total_predictions(stats: Sequence[LaneStats]) -> int:
    """Predictions stored by all models."""
    return sum(sum(s.predictions.values()) for s in stats)


@asynccontextmanager
async def woken_scorer(
    pool: asyncpg.Pool,
    dsn: str,
    *,
    poll_interval: float,
    fetch_per_model: bool = True,
    serve_onnx: bool = False,
) -> AsyncIterator[SequentialScorer]:
    """A loaded scorer that wakes on new events' NOTIFY (and every `poll_interval` seconds)."""
    notifier = Notifier(dsn, (EVENTS_CHANNEL,))
    await notifier.start()
    try:
        scorer = SequentialScorer(
            pool=pool,
            signal=notifier.subscribe(EVENTS_CHANNEL),
            poll_interval=poll_interval,
            fetch_per_model=fetch_per_model,
            serve_onnx=serve_onnx,
        )
        await scorer.load()
        yield scorer
    finally:
        await notifier.close()


async def serve_sequential(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """The predecessor's one-loop design (a benchmark baseline) until `stop`: what `coinfleet serve
    --scheduler sequential` runs in place of the lanes."""
    async with woken_scorer(db.pool, db.dsn, poll_interval=settings.poll_interval_seconds) as scorer:
        await run_until(scorer, stop)
