"""`coinfleet bench NAME`: benchmarks that print a table and, with --json, one JSON line last.

Each benchmark lives in `coinfleet.bench.<name>` with `async def run(settings, ...) -> dict` and
a `render(result) -> rich table`; the commands here parse options, note what the machine was like
(`bench.machine`) and print.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from coinfleet.bench.api import HttpPlacement, TrafficKind
from coinfleet.bench.machine import MachineWatch, describe
from coinfleet.cli.common import console, print_json, run
from coinfleet.config import Settings
from coinfleet.models.train import Algorithm

app = typer.Typer(
    rich_markup_mode=None, help="Benchmarks: measured side by side in one run.", no_args_is_help=True
)

# The options several benchmarks share, each with the same meaning wherever it appears.
AsJson = Annotated[bool, typer.Option("--json", help="End with one JSON object on stdout.")]
Models = Annotated[int, typer.Option(min=1, help="Active models.")]
EventRate = Annotated[float, typer.Option(min=1, help="Events per second fed.")]


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
    models: Models = 20,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds per load step.")] = 8,
    as_json: AsJson = False,
) -> None:
    """Sustained predictions/s and p99 latency of many models under a rising load."""
    _bench("throughput", as_json, models=models, seconds=seconds)


@app.command()
def baseline(
    models: Models = 3,
    algorithm: Annotated[
        Algorithm, typer.Option(help="Model kind (the predecessor ran RandomForests).")
    ] = "random_forest",
    seconds: Annotated[
        float,
        typer.Option(min=2, help="Measured seconds per arrival shape (a longer feed steadies the p99)."),
    ] = 20,
    as_json: AsJson = False,
) -> None:
    """Lanes against the predecessor's sequential loop on the same load: throughput and p99 ratios."""
    _bench("baseline", as_json, models=models, algorithm=algorithm, seconds=seconds)


@app.command()
def priority(as_json: AsJson = False) -> None:
    """Served shares of weighted models on one overloaded slot against their weights."""
    _bench("priority", as_json)


@app.command()
def evaluation(as_json: AsJson = False) -> None:
    """Evaluations/s with 1,000,000 due predictions, and the rounds a 10-prediction model waits."""
    _bench("evaluation", as_json)


@app.command()
def chaos(
    rows: Annotated[int, typer.Option(min=100, help="Metric rows fed (simulated market).")] = 100_000,
    kills: Annotated[int, typer.Option(min=0, help="SIGKILLs of a random worker (each restarted).")] = 10,
    seconds: Annotated[float, typer.Option(min=5, help="Seconds the feed takes.")] = 90,
    as_json: AsJson = False,
) -> None:
    """Three workers killed, paused and cut off from a restarted PostgreSQL: lost and duplicated
    predictions and alerts against a clean single-process run of the same rows."""
    _bench("chaos", as_json, rows=rows, kills=kills, feed_seconds=seconds)


@app.command()
def fleet(
    models: Annotated[int, typer.Option(min=1, help="Active models, one runner process each.")] = 50,
    rate: EventRate = 300,
    seconds: Annotated[float, typer.Option(min=2, help="Measured seconds.")] = 30,
    compare: Annotated[
        int | None,
        typer.Option(min=1, help="First measure this many models at the same feed (e.g. 20), side by side."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Many models in one process at a steady feed: memory per runner, lag, predictions/s."""
    _bench("fleet", as_json, models=models, rate=rate, seconds=seconds, compare=compare)


@app.command()
def ceiling(
    writers: Annotated[int, typer.Option(min=1, help="Connections storing at once.")] = 4,
    seconds: Annotated[float, typer.Option(min=1, help="Measured seconds.")] = 15,
    as_json: AsJson = False,
) -> None:
    """Prediction writes per second one PostgreSQL takes through the lanes' store statement."""
    _bench("ceiling", as_json, writers=writers, seconds=seconds)


@app.command()
def isolation(
    rate: EventRate = 50,
    seconds: Annotated[float, typer.Option(min=2, help="Measured seconds per phase and round.")] = 20,
    rounds: Annotated[int, typer.Option(min=1, help="Turns each phase takes.")] = 3,
    as_json: AsJson = False,
) -> None:
    """A fast model's p99 latency alone and beside slow, crashing and hanging models."""
    _bench("isolation", as_json, rate=rate, seconds=seconds, rounds=rounds)


@app.command("api")
def api_command(
    models: Models = 20,
    rate: Annotated[int, typer.Option(min=1, help="Metric rows per second fed.")] = 500,
    seconds: Annotated[float, typer.Option(min=2, help="Measured seconds per phase.")] = 10,
    history: Annotated[
        int, typer.Option(min=0, help="Stored predictions the API queries run over.")
    ] = 1_000_000,
    http: Annotated[
        HttpPlacement,
        typer.Option(
            help="process: the HTTP side in a child process (as serve runs it). inline: in the lanes' loop."
        ),
    ] = "process",
    traffic: Annotated[
        TrafficKind,
        typer.Option(
            help="all: REST, MCP and the stream's client; requests or stream: only those (costs apart)."
        ),
    ] = "all",
    as_json: AsJson = False,
) -> None:
    """Lanes' p99 without and with operator traffic (REST, SSE, MCP), API p99 and stream lag."""
    _bench(
        "api", as_json, models=models, rate=rate, seconds=seconds, history=history, http=http, traffic=traffic
    )


@app.command()
def alerts(
    models: Annotated[int, typer.Option(min=1, help="Models delivering at once.")] = 4,
    count: Annotated[int, typer.Option("--alerts", min=10, help="Alerts queued per model.")] = 500,
    scale: Annotated[
        float,
        typer.Option(
            min=1, help="The outage phase divides every delivery time constant and the outage by this."
        ),
    ] = 60,
    outage_minutes: Annotated[float, typer.Option(min=0.1, help="The receiver outage, before scaling.")] = 10,
    as_json: AsJson = False,
) -> None:
    """Webhook alerts/s per model to a local receiver answering in 1 ms, and a receiver outage: dead
    alerts, duplicates, order."""
    _bench("alerts", as_json, models=models, alerts=count, scale=scale, outage_seconds=outage_minutes * 60)
