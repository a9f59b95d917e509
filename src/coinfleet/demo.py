"""`coinfleet demo`: a whole fleet on a fresh machine — database, market, models, lanes — in one command."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import structlog

from coinfleet.api.process import http_child_until
from coinfleet.api.serving import HttpOptions
from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import Database, create_pool, fresh_database, resolve
from coinfleet.db.migrate import migrate
from coinfleet.demo_summary import DemoSnapshot as DemoSnapshot  # the result of `run_demo`
from coinfleet.demo_summary import ModelLine
from coinfleet.errors import ModelNotFound
from coinfleet.evaluation.outcomes import DEFAULT_GRACE_SECONDS
from coinfleet.evaluation.rounds import evaluation_loop, loop_config
from coinfleet.feed import live
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.lanes.store import prediction_counts
from coinfleet.lanes.supervisor import Supervisor
from coinfleet.metrics import MetricRow
from coinfleet.models import registry
from coinfleet.models.bundle import META_SUFFIX, ModelBundle, read_bundle, write_bundle
from coinfleet.models.importing import import_bundle, trained_model
from coinfleet.models.threshold import ALERT_SHARE
from coinfleet.models.train import Algorithm, train_model
from coinfleet.service.quality import calibration
from coinfleet.service.stats import statistics
from coinfleet.targets import TargetSpec

log = structlog.get_logger(__name__)
DEMO_DATABASE = "coinfleet_demo"
#: without a file the demo models are trained on this many simulated markets like the live one (the
#: latest ~30 % of them are the validation data their alert thresholds come from), each this long, on
#: rows of coins at most YOUNG_SECONDS old (what a demo run scores; later rows give the labels): models of
#: older coins put far higher probabilities on the demo's young coins than on their validation data
TRAINING_MARKETS = 24
YOUNG_SECONDS = 120.0
#: the simulated market's coins all launch within this many seconds of its start
LIVE_LAUNCH_WINDOW = 20.0
#: share of the run a recorded file's replay is fitted into when a duration is given
REPLAY_SHARE = 0.8
DEFAULT_SIMULATION_SECONDS = 60.0
#: the duration counts from when every lane runs (loading and compiling take a while on a busy machine);
#: lanes that have not all started this long after the duration ran out end the demo anyway
STARTUP_GRACE_SECONDS = 180.0
#: share of a recorded file's time span the demo models are trained on; the rest is scored out of sample
TRAIN_SHARE = 0.5


@dataclass(frozen=True, kw_only=True)
class DemoModel:
    """A model the demo trains: different algorithms and targets (the alert threshold comes from its
    validation data, as for `coinfleet train`)."""

    name: str
    algorithm: Algorithm
    target: TargetSpec


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel(
        name="xgb-up2-120s",
        algorithm="xgboost",
        target=TargetSpec(kind="change", direction="up", change_percent=2, horizon_seconds=120),
    ),
    DemoModel(
        name="lgbm-down5-300s",
        algorithm="lightgbm",
        target=TargetSpec(kind="change", direction="down", change_percent=5, horizon_seconds=300),
    ),
    DemoModel(
        name="hgb-down1-60s",
        algorithm="hist_gradient_boosting",
        target=TargetSpec(kind="change", direction="down", change_percent=1, horizon_seconds=60),
    ),
)

#: long enough for the youngest rows' labels: the longest horizon and the feed check's grace after them
TRAINING_MARKET_SECONDS = (
    YOUNG_SECONDS + max(m.target.horizon_seconds for m in DEMO_MODELS) + DEFAULT_GRACE_SECONDS
)


#: names the outcome rule the demo models' labels follow and how they are trained (markets, threshold):
#: models trained under another recipe are retrained
LABEL_RULE = f"as-of-{TRAINING_MARKETS}x{YOUNG_SECONDS:g}s-alerts{ALERT_SHARE:g}"


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What the user asked for."""

    duration: float | None
    data_rows: Sequence[MetricRow] | None  #: a recorded file's rows to score, or None for the simulator
    train_rows: Sequence[MetricRow] | None = None  #: a recorded file's rows to train on (before data_rows)
    data_key: str  #: names the market the models were trained on (cache key)
    coins: int = 60
    seed: int = 7
    speed: float | None = None  #: replay speed; None fits the replay into the run


def data_key_for(path: Path | None, seed: int) -> str:
    """A short name of the training market: the file's hash, or the simulator seed."""
    if path is None:
        return f"sim-{seed}"
    return f"file-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}-train{TRAIN_SHARE * 100:.0f}"


def split_recorded(rows: Sequence[MetricRow]) -> tuple[list[MetricRow], list[MetricRow]]:
    """A recorded file's rows split in time: the first TRAIN_SHARE of its span to train on, the rest to
    score (out of sample)."""
    if not rows:
        return [], []
    first = min(r.timestamp for r in rows)
    cut = first + (max(r.timestamp for r in rows) - first) * TRAIN_SHARE
    return [r for r in rows if r.timestamp < cut], [r for r in rows if r.timestamp >= cut]


def training_rows(options: DemoOptions) -> Sequence[MetricRow]:
    """The recorded file's first part, or simulated markets like the one the demo scores (coins launched
    together and watched through their first minutes), each with its own seed, one after the other."""
    if options.train_rows is not None:
        return options.train_rows
    rows: list[MetricRow] = []
    for market in range(TRAINING_MARKETS):
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=market)
        config = SimulatorConfig(
            coins=options.coins, seed=options.seed + 1000 + market, launch_window_seconds=LIVE_LAUNCH_WINDOW
        )
        rows.extend(MarketSimulator(config, start).history(TRAINING_MARKET_SECONDS))
    return rows


def ensure_demo_models(home: Path, options: DemoOptions) -> list[ModelBundle]:
    """Train the demo models unless a bundle for this market is already on disk."""
    folder = home / "demo-models" / f"{options.data_key}-{LABEL_RULE}"
    missing = [m for m in DEMO_MODELS if not (folder / (m.name + META_SUFFIX)).exists()]
    if missing:
        rows = training_rows(options)
        for spec in missing:
            log.info("training_demo_model", model=spec.name, rows=len(rows))
            young = YOUNG_SECONDS if options.train_rows is None else None
            trained = train_model(rows, algorithm=spec.algorithm, target=spec.target, max_age_seconds=young)
            write_bundle(folder, trained.to_bundle(spec.name))
    return [read_bundle(folder / (m.name + META_SUFFIX)) for m in DEMO_MODELS]


async def demo_database(settings: Settings) -> tuple[str, bool, str]:
    """(DSN, embedded server started, which database). On the embedded server the demo uses the main
    database, so that every other command sees its models and results; on a server of the user's
    (DATABASE_URL) it keeps its simulated market off their data, in a fresh database of its own."""
    target = await resolve(settings)
    if settings.database_url:
        return await fresh_database(target.dsn, DEMO_DATABASE), False, DEMO_DATABASE
    conn = await asyncpg.connect(target.dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return target.dsn, target.started_embedded, "main"


async def register_demo_model(conn: asyncpg.Connection, bundle: ModelBundle) -> None:
    """Register and activate a demo model; one from an earlier run is reused, with this run's file as a
    new version when it was trained on another market."""
    try:
        current = await registry.get(conn, bundle.name)
    except ModelNotFound:
        await import_bundle(conn, bundle, activate=True)
        return
    model = trained_model(bundle)
    if current.artifact_sha256 != model.sha256:
        await registry.switch_version(conn, bundle.name, await registry.add_version(conn, bundle.name, model))
    if current.status != "active":
        await registry.set_status(conn, bundle.name, "active")


class DemoRun:
    """One demo: the feeder and the supervisor side by side, observed until the end condition."""

    def __init__(
        self,
        *,
        settings: Settings,
        options: DemoOptions,
        pool: asyncpg.Pool,
        dsn: str,
        http: HttpOptions | None = None,
    ) -> None:
        self._options = options
        self._pool = pool
        self._dsn = dsn
        self._http = http
        self._stop_http = asyncio.Event()
        self._supervisor = Supervisor(pool=pool, dsn=dsn, settings=settings)
        self._evaluation = loop_config(settings)
        self._stop_evaluation = asyncio.Event()
        self._stop_feed = asyncio.Event()
        self._inserted = 0
        self._started = time.monotonic()
        self._scoring_since: float | None = (
            None  #: when every lane had started: the duration counts from here
        )

    def _count(self, n: int) -> None:
        self._inserted += n

    def _feeder(self) -> asyncio.Task[int]:
        if self._options.data_rows is not None:
            return asyncio.create_task(
                live.replay(
                    self._pool,
                    self._options.data_rows,
                    speed=self._replay_speed(),
                    on_rows=self._count,
                    stop=self._stop_feed,
                )
            )
        config = SimulatorConfig(
            coins=self._options.coins, seed=self._options.seed, launch_window_seconds=LIVE_LAUNCH_WINDOW
        )
        simulator = MarketSimulator(config, datetime.now(UTC) - timedelta(seconds=5))
        return asyncio.create_task(
            live.simulate(self._pool, simulator, stop=self._stop_feed, on_rows=self._count)
        )

    def _replay_speed(self) -> float:
        if self._options.speed is not None:
            return self._options.speed
        rows = self._options.data_rows or []
        seconds = live.span(rows).total_seconds()
        budget = REPLAY_SHARE * (self._options.duration or 60.0)
        return max(1.0, seconds / budget)

    async def run(self, on_snapshot: Callable[[DemoSnapshot], None]) -> DemoSnapshot:
        """Feed and score until the duration passes, or the replay ends and every lane caught up."""
        lanes = asyncio.create_task(self._supervisor.run())
        http = asyncio.create_task(self._serve_http())
        evaluation = asyncio.create_task(evaluation_loop(self._pool, self._evaluation, self._stop_evaluation))
        feeder = self._feeder()
        duration = self._options.duration
        if duration is None and self._options.data_rows is None:
            duration = DEFAULT_SIMULATION_SECONDS
        try:
            while True:
                await asyncio.sleep(0.5)
                snapshot = await self.snapshot(feeding=not feeder.done())
                on_snapshot(snapshot)
                if self._scoring_since is None and await self._supervisor.all_lanes_started():
                    self._scoring_since = time.monotonic()
                if self._finished(snapshot, duration) or http.done():  # done early: it failed to listen
                    break
            self._stop_feed.set()
            await feeder
            return await self.snapshot(feeding=False, final=True)
        finally:
            self._stop_feed.set()
            await feeder
            self._supervisor.stop()
            await lanes
            self._stop_evaluation.set()
            await evaluation
            self._stop_http.set()
            await http

    async def _serve_http(self) -> None:
        if self._http is not None:
            database = Database(pool=self._pool, dsn=self._dsn)
            await http_child_until(self._http, database, self._supervisor.all_lanes_started, self._stop_http)

    def _finished(self, snapshot: DemoSnapshot, duration: float | None) -> bool:
        if duration is not None:
            scoring = 0.0 if self._scoring_since is None else time.monotonic() - self._scoring_since
            if scoring >= duration or snapshot.elapsed >= duration + STARTUP_GRACE_SECONDS:
                return True
        # a lane still starting (a model loading slowly) has no line yet: wait for it, within the grace
        started = self._scoring_since is not None or snapshot.elapsed >= STARTUP_GRACE_SECONDS
        caught_up = all(m.lag_events == 0 for m in snapshot.models) and bool(snapshot.models)
        return not snapshot.feeding and caught_up and started

    async def snapshot(self, *, feeding: bool, final: bool = False) -> DemoSnapshot:
        """Counters of every lane; the final one reads stored predictions from the database."""
        await self._supervisor.refresh_lag()
        lines = []
        for lane in self._supervisor.lanes:
            stats = lane.stats
            predictions = dict(stats.predictions)
            brier_live, judged = None, None
            if final:
                async with self._pool.acquire() as conn:
                    predictions = await prediction_counts(conn, lane.model.id)
                    brier_live = await _live_brier(conn, lane.model.name)
                    judged = (await statistics(conn, model=lane.model.name)).models[0]
            lines.append(
                ModelLine(
                    name=lane.model.name,
                    algorithm=lane.model.algorithm,
                    target=lane.model.target.describe(),
                    events=stats.events,
                    lag_events=stats.lag_events,
                    predictions=predictions,
                    last_probability=stats.last_probability,
                    errors=sum(stats.errors.values()),
                    brier_validation=lane.model.training_metrics.get("calibration", {}).get("brier"),
                    brier_live=brier_live,
                    evaluated=judged.evaluated if judged else 0,
                    hit_rate_at_horizon=judged.hit_rate_at_horizon if judged else None,
                    hit_rate_within=judged.hit_rate_within if judged else None,
                )
            )
        return DemoSnapshot(
            elapsed=time.monotonic() - self._started, events=self._inserted, feeding=feeding, models=lines
        )


async def _live_brier(conn: asyncpg.Connection, name: str) -> float | None:
    reports = await calibration(conn, model=name)
    return reports[0].brier if reports else None


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    on_snapshot: Callable[[DemoSnapshot], None],
    http: HttpOptions | None = None,
) -> DemoSnapshot:
    """Train (once), start a fresh demo database, feed the market, run the lanes, summarise."""
    bundles = await asyncio.to_thread(ensure_demo_models, settings.home, options)
    dsn, started_embedded, database = await demo_database(settings)
    try:
        pool = await create_pool(dsn, max_size=settings.pool_max_size)
        try:
            async with pool.acquire() as conn:
                for bundle in bundles:
                    await register_demo_model(conn, bundle)
            run = DemoRun(settings=settings, options=options, pool=pool, dsn=dsn, http=http)
            return dataclasses.replace(await run.run(on_snapshot), database=database)
        finally:
            await pool.close()
    finally:
        if started_embedded:
            embedded.stop(settings.pgdata)
