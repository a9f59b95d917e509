"""`coinfleet migrate-from-pump-server`: the one-command move-over from the predecessor."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from coinfleet.cli.common import console, err_console, print_json, run
from coinfleet.config import Settings
from coinfleet.models.importing import PICKLE_WARNING
from coinfleet.service.predecessor import MoveOverOptions, MoveOverReport, migrate_from_pump_server


def migrate_from_pump_server_command(
    database_url: str | None = typer.Option(
        None, help="The predecessor's PostgreSQL (default: coinfleet's own database)."
    ),
    models_dir: Path | None = typer.Option(
        None, file_okay=False, exists=True, help="Where its model files are (default: their stored paths)."
    ),
    trust: bool = typer.Option(
        False,
        "--trust",
        help="Load its joblib pickles: loading a pickle runs its code. Only for files you trust.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Bring the predecessor's models, settings and prediction history over; a second run changes nothing."""
    if trust:
        err_console.print(f"[yellow]warning:[/yellow] {PICKLE_WARNING.removesuffix(', with --trust')}")
    options = MoveOverOptions(models_dir=models_dir, trusted=trust)

    async def service(settings: Settings) -> MoveOverReport:
        return await migrate_from_pump_server(settings, options, database_url=database_url)

    report = run(service)
    if as_json:
        print_json({"changed": report.changed, "models": [asdict(m) for m in report.models]})
        return
    _render(report)


def _render(report: MoveOverReport) -> None:
    table = Table("id there", "name", "status", "predictions", "evaluations", "why / notes")
    for m in report.models:
        table.add_row(
            str(m.predecessor_id),
            m.name,
            m.status,
            str(m.predictions),
            str(m.evaluations),
            "; ".join(filter(None, [m.reason, *m.notes])),
        )
    console.print(table)
    console.print("changed nothing (everything was brought over before)" if not report.changed else "done")
