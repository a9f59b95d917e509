"""`coinfleet train`: train a model on real price paths and register it (or write it to disk)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import typer

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.cli.feed import load_recorded
from coinfleet.config import Settings
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig
from coinfleet.feed.writer import read_metrics
from coinfleet.metrics import MetricRow
from coinfleet.models.bundle import write_bundle
from coinfleet.models.threshold import ALERT_SHARE
from coinfleet.models.train import Algorithm, TrainedModel, train_model
from coinfleet.service import models
from coinfleet.targets import TargetSpec


def train(
    name: str = typer.Option(..., help="Name of the new model."),
    algorithm: Algorithm = typer.Option("xgboost", help="The learning algorithm."),
    direction: Literal["up", "down"] = typer.Option("up", help="Price direction of the target."),
    change: float = typer.Option(5.0, min=0.01, help="Target price change in %."),
    horizon: int = typer.Option(120, min=1, help="Horizon in seconds."),
    label_mode: Literal["within", "at_horizon"] = typer.Option(
        "within", help="Hit any time, or at horizon end."
    ),
    data: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Train on a recorded file."),
    simulate_minutes: float | None = typer.Option(None, min=1, help="Train on this much simulated market."),
    since_hours: float = typer.Option(
        24.0, min=0.01, help="Without --data/--simulate: rows of the last N hours."
    ),
    alert_threshold: float | None = typer.Option(
        None,
        min=0.5,
        max=1.0,
        help="Alert threshold stored with the model [default: the one at which "
        f"{ALERT_SHARE:.0%} of the validation predictions alert].",
    ),
    out: Path | None = typer.Option(
        None, file_okay=False, help="Also write the model bundle to this folder."
    ),
    register: bool = typer.Option(True, help="Register the model in the database."),
    activate: bool = typer.Option(False, "--activate", help="Activate it right away."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary line."),
) -> None:
    """Label every row with the real future price path, train with a time-ordered split, register."""
    target = TargetSpec(kind="change", direction=direction, change_percent=change, horizon_seconds=horizon)

    async def service(settings: Settings) -> TrainedModel:
        rows = await _rows(settings, data, simulate_minutes, since_hours)
        trained = train_model(
            rows,
            algorithm=algorithm,
            target=target,
            label_mode=label_mode,
            grace_seconds=settings.evaluation_grace_seconds,
        )
        bundle = trained.to_bundle(name, alert_threshold=alert_threshold)
        if out is not None:
            write_bundle(out, bundle)
        if register:
            async with connection(settings) as db:
                await models.import_model(db, bundle, activate=activate)
        return trained

    trained = run(service)
    summary = {
        "name": name,
        "algorithm": algorithm,
        "target": target.to_dict(),
        "alert_threshold": trained.alert_threshold if alert_threshold is None else alert_threshold,
        "metrics": trained.metrics,
    }
    if as_json:
        print_json(summary)
    else:
        console.print_json(data=summary)


async def _rows(
    settings: Settings, data: Path | None, simulate_minutes: float | None, since_hours: float
) -> list[MetricRow]:
    if data is not None:
        return load_recorded(data).rows
    if simulate_minutes is not None:
        config = SimulatorConfig(coins=200, launch_window_seconds=simulate_minutes * 45)
        return MarketSimulator(config, datetime.now(UTC)).history(simulate_minutes * 60)
    async with connection(settings) as db:
        return await read_metrics(db, datetime.now(UTC) - timedelta(hours=since_hours))
