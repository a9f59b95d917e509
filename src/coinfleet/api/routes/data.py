"""/api/predictions, /api/coins, /api/statistics (with calibration and drift), /api/lag, /api/status
and /api/score."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, Field

from coinfleet.api.auth import require_read
from coinfleet.api.routes.deps import Pool
from coinfleet.api.state import Shared, shared
from coinfleet.evaluation.calibration import DEFAULT_BUCKETS
from coinfleet.models.drift import DRIFT_SAMPLE_ROWS, DRIFT_WINDOW_HOURS
from coinfleet.service import coins, health, predictions, quality, stats
from coinfleet.service import models as service_models
from coinfleet.service.schemas import (
    CalibrationReport,
    CoinDetail,
    DriftReport,
    Health,
    LagReport,
    PredictionPage,
    PredictionQuery,
    StatisticsReport,
)
from coinfleet.service.scoring import CoinScore
from coinfleet.service.stats import parse_since

router = APIRouter(prefix="/api", dependencies=[Depends(require_read)])
Mint = Annotated[str, Path(description="the coin's mint address", min_length=1, max_length=100)]


class ScoreRequest(BaseModel):
    """Which coin to score, at which time, with which models."""

    mint: str = Field(min_length=1, max_length=100, description="the coin's mint address")
    at: AwareDatetime | None = Field(None, description="its newest row at or before this time; default: now")
    models: list[str] | None = Field(
        None, max_length=100, description="model names; default: every active one"
    )


@router.get(
    "/predictions", response_model=PredictionPage, tags=["predictions"], summary="Filtered predictions"
)
async def list_predictions(db: Pool, wanted: Annotated[PredictionQuery, Query()]) -> PredictionPage:
    """Newest first, one page (`limit` ≤ 500) per call; pass `next_cursor` as `cursor` for the next. A page
    examines at most 200,000 stored predictions (the model's, when `model` is given): when the filters
    match fewer rows than `limit` among them, the page is short (maybe empty), `searched_to_id` and
    `searched_to_time` say how far back it looked, and `next_cursor` searches further back."""
    return await predictions.list_predictions(db, wanted)


@router.get(
    "/coins/{mint}", response_model=CoinDetail, tags=["coins"], summary="A coin's history and predictions"
)
async def coin_detail(
    db: Pool,
    mint: Mint,
    since: Annotated[AwareDatetime | None, Query(description="window start (metric time)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="window end, exclusive")] = None,
) -> CoinDetail:
    """Metric rows in the window (newest 5,000), each model's predictions with evaluation windows, alerts."""
    return await coins.coin_detail(db, mint, since=since, until=until)


@router.get(
    "/statistics", response_model=StatisticsReport, tags=["statistics"], summary="Statistics per model"
)
async def statistics(
    db: Pool,
    since: Annotated[
        str | None, Query(description="1h, 24h, 30m, 7d, an ISO time, or all", max_length=40)
    ] = None,
    model: Annotated[str | None, Query(description="only this model", max_length=200)] = None,
) -> StatisticsReport:
    """Counts by tag, hit rates by both rules, alert precision and gains, per model and across them."""
    start: datetime | None = parse_since(since)
    return await stats.statistics(db, since=start, model=model)


Since = Annotated[str | None, Query(description="1h, 24h, 30m, 7d, an ISO time, or all", max_length=40)]
OneModel = Annotated[str | None, Query(description="only this model", max_length=200)]


@router.get(
    "/statistics/calibration",
    response_model=list[CalibrationReport],
    tags=["statistics"],
    summary="Brier score and reliability table per model",
)
async def calibration(
    db: Pool,
    since: Since = None,
    model: OneModel = None,
    buckets: Annotated[int, Query(ge=2, le=100, description="probability buckets")] = DEFAULT_BUCKETS,
) -> list[CalibrationReport]:
    """Over judged predictions made since the time: mean (p − label)² and the observed hit rate per
    probability bucket (`coinfleet stats --reliability`)."""
    return await quality.calibration(db, since=parse_since(since), model=model, buckets=buckets)


@router.get(
    "/statistics/drift",
    response_model=list[DriftReport],
    tags=["statistics"],
    summary="Feature drift per model (PSI against the training sample)",
)
async def drift(
    db: Pool,
    model: OneModel = None,
    hours: Annotated[
        float, Query(gt=0, le=24 * 365, description="scored rows of this many hours before the newest")
    ] = DRIFT_WINDOW_HOURS,
    sample: Annotated[int, Query(ge=1, le=100_000, description="most rows compared")] = DRIFT_SAMPLE_ROWS,
) -> list[DriftReport]:
    """Each feature's PSI of recent scored rows against the model's training sample, worst first."""
    return await quality.drift(db, model=model, hours=hours, sample=sample)


@router.get("/lag", response_model=LagReport, tags=["health"], summary="Every lane's lag")
async def lag(db: Pool) -> LagReport:
    """Events and seconds behind per model, and the age of the transaction holding the horizon back."""
    return await service_models.lag(db)


@router.get("/status", response_model=Health, tags=["health"], summary="Fleet health")
async def status(db: Pool) -> Health:
    """ok / degraded / down with one sentence per problem (quarantined models, a stuck horizon)."""
    return await health.health(db)


@router.post(
    "/score", response_model=CoinScore, tags=["scoring"], summary="Score a coin now (stores nothing)"
)
async def score(request: ScoreRequest, objects: Annotated[Shared, Depends(shared)]) -> CoinScore:
    """Each model's probability and tag for the coin's newest metric row (at or before `at`)."""
    return await objects.scorer.score(request.mint, at=request.at, models=request.models)
