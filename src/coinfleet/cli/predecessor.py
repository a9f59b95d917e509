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
    table = Table("id there", "name", "status", "predictions", "evaluations", "ignore windows")
    for m in report.models:
        counts = (m.predictions, m.evaluations, m.ignore_windows)
        table.add_row(str(m.predecessor_id), m.name, m.status, *map(str, counts))
    console.print(table)
    for m in report.models:  # below the table, at full width: a reason can name many features
        for line in filter(None, [m.reason, *m.notes]):
            console.print(f"{m.name}: {line}", markup=False, highlight=False)
    console.print(summary(report))


def summary(report: MoveOverReport) -> str:
    """The run in one line: what it brought over, or why it changed nothing."""
    if not report.models:
        return "changed nothing: the predecessor's database has no models"
    skipped = sum(m.status == "skipped" for m in report.models)
    if report.changed:
        imported = sum(m.status == "imported" for m in report.models)
        predictions = sum(m.predictions for m in report.models)
        return f"done: {imported} models and {predictions} predictions brought over, {skipped} skipped"
    if skipped:
        return f"changed nothing: {skipped} of {len(report.models)} models skipped (why is said above)"
    return "changed nothing (everything was brought over before)"
