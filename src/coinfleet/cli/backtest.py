"""`coinfleet backtest FILE`: replay a recorded file through the real lanes and evaluation, in a
throwaway database on the same server, and print the statistics.

The models (default: every active one) are copied from the main registry; the file is replayed as
fast as possible while the lanes and the evaluation loop run exactly as in `serve`, then the
remaining due predictions are evaluated at the file's last timestamp. Predictions whose horizon
runs past the end of the file stay pending (counted, never guessed).

Besides the statistics it prints each model's coverage (of the predictions whose horizon ended inside
the file: judged, no_data, pending) and its hit rates and alert precision under the as-of rule beside
the former first-row-in-grace rule, which drops every coin that stopped trading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coinfleet.cli.common import console, err_console, print_json, run
from coinfleet.cli.feed import load_recorded
from coinfleet.cli.stats import render
from coinfleet.config import Settings
from coinfleet.db import embedded
from coinfleet.db.database import create_pool, resolve, throwaway_database
from coinfleet.db.sql import query
from coinfleet.errors import ConfigError
from coinfleet.evaluation.rounds import LoopConfig, data_clock, drain, evaluation_loop, round_config
from coinfleet.feed import live
from coinfleet.metrics import MetricRow
from coinfleet.models import registry
from coinfleet.models.registry import NewModel
from coinfleet.pipeline.supervisor import Supervisor
from coinfleet.reports import (
    Coverage,
    ModelStats,
    RuleComparison,
    model_coverage,
    model_stats,
    rule_comparison,
)

#: seconds between checks whether every lane has caught up with the replay
CATCH_UP_POLL_SECONDS = 0.2


@dataclass(frozen=True, kw_only=True)
class BacktestResult:
    """The statistics of the run and every prediction with its outcome (times relative to the file)."""

    rows: int
    stats: list[ModelStats]
    outcomes: list[dict[str, Any]]
    coverage: list[Coverage]  #: of predictions whose horizon ended by the file's last row
    rules: list[RuleComparison]  #: the as-of rule beside the former one


async def copy_models(
    source: asyncpg.Connection, target: asyncpg.Connection, names: Sequence[str]
) -> list[str]:
    """Register the named models (default: every active one) in the target database, active."""
    models = [
        m for m in await registry.list_models(source) if (m.name in names if names else m.status == "active")
    ]
    missing = set(names) - {m.name for m in models}
    if missing or not models:
        raise ConfigError(
            f"no such model(s) to backtest: {sorted(missing) or 'no active model'}; "
            "see `coinfleet models list`"
        )
    for model in models:
        new = NewModel(
            name=model.name,
            algorithm=model.algorithm,
            format=model.format,
            artifact=await registry.load_artifact(source, model.id),
            features=model.features,
            target=model.target,
            settings=model.settings,
            training_metrics=model.training_metrics,
        )
        await registry.register(target, new)
        await registry.set_status(target, model.name, "active")
    return [m.name for m in models]


async def prediction_outcomes(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every prediction and its outcome, times in seconds after the first metric row."""
    return [dict(r) for r in await conn.fetch(query("prediction_outcomes"))]


async def score_and_evaluate(
    pool: asyncpg.Pool,
    dsn: str,
    settings: Settings,
    rows: Sequence[MetricRow],
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Replay the rows as fast as possible beside the lanes and the evaluation loop, as `serve` runs them."""
    supervisor = Supervisor(pool=pool, dsn=dsn, settings=settings)
    stop_evaluation = asyncio.Event()
    config = LoopConfig(rounds=round_config(settings), interval_seconds=0.2, stall_seconds=None)
    lanes = asyncio.create_task(supervisor.run())
    evaluation = asyncio.create_task(evaluation_loop(pool, config, stop_evaluation))
    try:
        await live.replay(pool, rows, speed=None, on_rows=on_rows)
        await caught_up(pool)
    finally:
        supervisor.stop()
        stop_evaluation.set()
        await asyncio.gather(lanes, evaluation)
    await drain(pool, config.rounds)


async def caught_up(pool: asyncpg.Pool) -> None:
    """Wait until every active model's committed cursor is past the last stored event."""
    while True:
        async with pool.acquire() as conn:
            if not await conn.fetchval(query("active_models_behind")):
                return
        await asyncio.sleep(CATCH_UP_POLL_SECONDS)


async def run_backtest(
    settings: Settings,
    rows: Sequence[MetricRow],
    *,
    models: Sequence[str] = (),
    on_rows: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Copy the models, replay the rows through lanes and evaluation in a throwaway database, report."""
    target = await resolve(settings)
    try:
        async with throwaway_database(target.dsn, "coinfleet_backtest") as dsn:
            pool = await create_pool(dsn, max_size=settings.pool_max_size)
            try:
                source = await asyncpg.connect(target.dsn)
                try:
                    async with pool.acquire() as conn:
                        await copy_models(source, conn, models)
                finally:
                    await source.close()
                await score_and_evaluate(pool, dsn, settings, rows, on_rows)
                async with pool.acquire() as conn:
                    return await _result(conn, len(rows))
            finally:
                await pool.close()
    finally:
        if target.started_embedded:
            embedded.stop(settings.pgdata)


async def _result(conn: asyncpg.Connection, rows: int) -> BacktestResult:
    clock = await data_clock(conn)
    return BacktestResult(
        rows=rows,
        stats=await model_stats(conn),
        outcomes=await prediction_outcomes(conn),
        coverage=[] if clock is None else await model_coverage(conn, clock),
        rules=await rule_comparison(conn),
    )


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{part} ({part / whole:.1%})"


def render_coverage(coverage: Sequence[Coverage]) -> Table:
    """Per model: what became of the predictions whose horizon ended inside the file."""
    table = Table(title="coverage: predictions whose horizon ended inside the file")
    for column in ("model", "ended", "judged", "no data", "invalid price", "pending", "past the file"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for c in coverage:
        table.add_row(
            c.name,
            str(c.ended),
            _share(c.judged, c.ended),
            _share(c.no_data, c.ended),
            _share(c.invalid_price, c.ended),
            _share(c.pending, c.ended),
            str(c.running),
        )
    return table


def render_rules(rules: Sequence[RuleComparison]) -> Table:
    """Per model: hit rate and alert precision as of the horizon end beside the former rule."""
    table = Table(title="as-of rule vs former rule (first row in [end, end + grace]; quiet coins dropped)")
    columns = ("model", "judged", "hit@end", "hit within", "alert prec@end", "alert prec within")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rules:
        table.add_row(
            r.name,
            f"{r.judged} / {r.judged_former}",
            _pair(r.hit_rate_at_horizon, r.hit_rate_at_horizon_former),
            _pair(r.hit_rate_within, r.hit_rate_within_former),
            _pair(r.alert_precision_at_horizon, r.alert_precision_at_horizon_former),
            _pair(r.alert_precision_within, r.alert_precision_within_former),
        )
    table.caption = "each cell: as-of / former"
    return table


def _pair(as_of: float | None, former: float | None) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    return f"{pct(as_of)} / {pct(former)}"


def backtest(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A recorded file (CSV)."),
    model: list[str] = typer.Option(
        [], "--model", help="Model to backtest (repeatable; default: all active)."
    ),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of statistics."),
) -> None:
    """Replay a recorded file through the lanes and evaluation in a throwaway database; print statistics."""
    rows = load_recorded(file).rows
    screen = err_console if as_json else console

    async def service(settings: Settings) -> BacktestResult:
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=screen, transient=True) as progress:
            task = progress.add_task("rows", total=len(rows))
            return await run_backtest(
                settings, rows, models=model, on_rows=lambda n: progress.advance(task, n)
            )

    result = run(service)
    screen.print(render(result.stats, None))
    screen.print(render_coverage(result.coverage))
    screen.print(render_rules(result.rules))
    if as_json:
        print_json(
            {
                "rows": result.rows,
                "models": [s.as_dict() for s in result.stats],
                "coverage": [c.as_dict() for c in result.coverage],
                "rules": [r.as_dict() for r in result.rules],
            }
        )
