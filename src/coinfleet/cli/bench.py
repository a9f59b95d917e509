"""`coinfleet bench NAME`: benchmarks that print a table and, with --json, one JSON line last.

Each benchmark lives in `coinfleet.bench.<name>` with `async def run(settings, ...) -> dict` and
a `render(result) -> rich table`; the commands here parse options, note what the machine was like
(`bench.machine`) and print.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from coinfleet.bench.api import HttpPlacement
from coinfleet.bench.machine import MachineWatch, describe
from coinfleet.cli.common import console, print_json, run
from coinfleet.config import Settings
from coinfleet.models.train import Algorithm

app = typer.Typer(
    rich_markup_mode=None, help="Benchmarks: measured side by side in one run.", no_args_is_help=True
)
JSON_OPTION = typer.Option(False, "--json", help="End with one JSON object on stdout.")


def _bench(name: str, as_json: bool, **options: Any) -> None:
    """Run `coinfleet.bench.<name>`, print its table and the machine's figures, and its JSON (with
    them under "machine") last when asked."""
    bench = importlib.import_module(f"coinfleet.bench.{name}")
    watch = MachineWatch()

    async def service(settings: Settings) -> dict[str, Any]:
        result: dict[str, Any] = await bench.run(settings, **options)
        return result

    result = run(service)
    result["machine"] = watch.report()
    console.print(bench.render(result))
    console.print(describe(result["machine"]))
    if as_json:
        print_json(result)


@app.command()
def throughput(
    models: int = typer.Option(20, min=1, help="Active models."),
    seconds: float = typer.Option(8, min=1, help="Seconds per load step."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Sustained predictions/s and p99 latency of many models under a rising load."""
    _bench("throughput", as_json, models=models, seconds=seconds)


@app.command()
def baseline(
    models: int = typer.Option(3, min=1, help="Active models."),
    algorithm: Algorithm = typer.Option(
        "random_forest", help="Model kind (the predecessor ran RandomForests)."
    ),
    seconds: float = typer.Option(
        20, min=2, help="Measured seconds per arrival shape (a longer feed steadies the p99)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Lanes against the predecessor's sequential loop on the same load: throughput and p99 ratios."""
    _bench("baseline", as_json, models=models, algorithm=algorithm, seconds=seconds)


@app.command()
def priority(as_json: bool = JSON_OPTION) -> None:
    """Served shares of weighted models on one overloaded slot against their weights."""
    _bench("priority", as_json)


@app.command()
def evaluation(as_json: bool = JSON_OPTION) -> None:
    """Evaluations/s with 1,000,000 due predictions, and the rounds a 10-prediction model waits."""
    _bench("evaluation", as_json)


@app.command()
def chaos(
    rows: int = typer.Option(100_000, min=100, help="Metric rows fed (simulated market)."),
    kills: int = typer.Option(10, min=0, help="SIGKILLs of a random worker (each restarted)."),
    seconds: float = typer.Option(90, min=5, help="Seconds the feed takes."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Three workers killed, paused and cut off from a restarted PostgreSQL: lost and duplicated
    predictions and alerts against a clean single-process run of the same rows."""
    _bench("chaos", as_json, rows=rows, kills=kills, feed_seconds=seconds)


@app.command()
def fleet(
    models: int = typer.Option(50, min=1, help="Active models, one runner process each."),
    rate: float = typer.Option(300, min=1, help="Events per second fed."),
    seconds: float = typer.Option(30, min=2, help="Measured seconds."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Many models in one process at a steady feed: memory per runner, lag, predictions/s."""
    _bench("fleet", as_json, models=models, rate=rate, seconds=seconds)


@app.command()
def ceiling(
    writers: int = typer.Option(4, min=1, help="Connections storing at once."),
    seconds: float = typer.Option(15, min=1, help="Measured seconds."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Prediction writes per second one PostgreSQL takes through the lanes' store statement."""
    _bench("ceiling", as_json, writers=writers, seconds=seconds)


@app.command()
def isolation(
    rate: float = typer.Option(50, min=1, help="Events per second fed."),
    seconds: float = typer.Option(20, min=2, help="Measured seconds per phase and round."),
    rounds: int = typer.Option(3, min=1, help="Turns each phase takes."),
    as_json: bool = JSON_OPTION,
) -> None:
    """A fast model's p99 latency alone and beside slow, crashing and hanging models."""
    _bench("isolation", as_json, rate=rate, seconds=seconds, rounds=rounds)


@app.command("api")
def api_command(
    models: int = typer.Option(20, min=1, help="Active models."),
    rate: int = typer.Option(500, min=1, help="Metric rows per second fed."),
    seconds: float = typer.Option(10, min=2, help="Measured seconds per phase."),
    history: int = typer.Option(1_000_000, min=0, help="Stored predictions the API queries run over."),
    http: HttpPlacement = typer.Option(
        "process",
        help="process: the HTTP side in a child process (as serve runs it). inline: in the lanes' loop.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Lanes' p99 without and with operator traffic (REST, SSE, MCP), API p99 and stream lag."""
    _bench("api", as_json, models=models, rate=rate, seconds=seconds, history=history, http=http)


@app.command()
def alerts(
    models: int = typer.Option(4, min=1, help="Models delivering at once."),
    count: int = typer.Option(500, "--alerts", min=10, help="Alerts queued per model."),
    scale: float = typer.Option(
        60, min=1, help="The outage phase divides every delivery time constant and the outage by this."
    ),
    outage_minutes: float = typer.Option(10, min=0.1, help="The receiver outage, before scaling."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Webhook alerts/s per model to a local receiver answering in 1 ms, and a receiver outage: dead
    alerts, duplicates, order."""
    _bench("alerts", as_json, models=models, alerts=count, scale=scale, outage_seconds=outage_minutes * 60)
