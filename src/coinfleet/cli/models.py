"""`coinfleet models …`: list, show, import, activate, deactivate, resume and change settings of models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.models.bundle import read_bundle
from coinfleet.models.settings import parse_assignments
from coinfleet.service import models
from coinfleet.service.common import Db
from coinfleet.service.schemas import Model

app = typer.Typer(help="The model registry.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object.")
#: what `models list --json` and `models show` print of a model (the lane is shown by `coinfleet lag`)
SUMMARY_FIELDS = {
    "id", "name", "version", "algorithm", "format", "status", "status_reason", "target", "features",
    "settings", "training_metrics", "sha256",
}  # fmt: skip


def _summary(model: Model) -> dict[str, Any]:
    data = model.model_dump(include=SUMMARY_FIELDS)
    data["target"] = {k: v for k, v in data["target"].items() if v is not None and k != "description"}
    return data


def _call(operation: Callable[[Db], Awaitable[Model]]) -> Model:
    async def service(settings: Settings) -> Model:
        async with connection(settings) as db:
            return await operation(db)

    return run(service)


@app.command("import")
def import_command(
    bundle: Path = typer.Argument(..., exists=True, dir_okay=False, help="A NAME.model.json file."),
    name: str | None = typer.Option(None, help="Register under another name."),
    activate: bool = typer.Option(False, "--activate", help="Activate it right away."),
) -> None:
    """Validate and register a model bundle (as written by `coinfleet train --out`)."""
    loaded = read_bundle(bundle)
    if name:
        loaded = replace(loaded, name=name)
    model = _call(lambda db: models.import_model(db, loaded, activate=activate))
    console.print(f"{model.name}: imported ({model.status})")


@app.command("list")
def list_command(as_json: bool = JSON_OPTION) -> None:
    """All models with status, target and key settings."""

    async def service(settings: Settings) -> list[Model]:
        async with connection(settings) as db:
            return await models.list_models(db)

    found = run(service)
    if as_json:
        print_json([_summary(m) for m in found])
        return
    table = Table("name", "algorithm", "target", "status", "weight", "threshold", "reason")
    for m in found:
        table.add_row(
            m.name,
            m.algorithm,
            m.target.description,
            m.status,
            f"{m.settings['weight']:g}",
            f"{m.settings['alert_threshold']:g}",
            m.status_reason or "",
        )
    console.print(table)


@app.command()
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Everything about one model."""
    data = _summary(_call(lambda db: models.show_model(db, name)))
    if as_json:
        print_json(data)
    else:
        console.print_json(data=data)


@app.command()
def activate(name: str) -> None:
    """Start scoring new events with this model (running servers pick it up live)."""
    _call(lambda db: models.activate_model(db, name))
    console.print(f"{name}: active")


@app.command()
def deactivate(name: str) -> None:
    """Stop scoring with this model; its predictions stay."""
    _call(lambda db: models.deactivate_model(db, name))
    console.print(f"{name}: inactive")


@app.command()
def resume(name: str) -> None:
    """Bring a quarantined model back; it continues at its cursor, nothing was lost."""
    _call(lambda db: models.resume_model(db, name))
    console.print(f"{name}: active")


@app.command("set")
def set_command(name: str, assignments: list[str] = typer.Argument(..., metavar="KEY=VALUE...")) -> None:
    """Change settings, e.g. `alert_threshold=0.8 phases=1,2 weight=4`; takes effect without restart."""

    async def service(settings: Settings) -> tuple[dict[str, Any], Model]:
        changes = parse_assignments(assignments)
        async with connection(settings) as db:
            return changes, await models.update_settings(db, name, changes)

    changes, model = run(service)
    console.print_json(data={k: model.settings[k] for k in changes})
