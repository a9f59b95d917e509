"""`coinfleet models …`: list, show, activate, deactivate and change settings of models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, print_json, run
from coinfleet.config import Settings
from coinfleet.models import registry
from coinfleet.models.bundle import read_bundle
from coinfleet.models.importing import import_bundle
from coinfleet.models.registry import ModelRecord, Status
from coinfleet.models.settings import parse_assignments
from coinfleet.pipeline.store import set_aside_counts

app = typer.Typer(help="The model registry.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object.")


def _summary(model: ModelRecord) -> dict[str, object]:
    return {
        "id": model.id,
        "name": model.name,
        "version": model.version,
        "algorithm": model.algorithm,
        "format": model.format,
        "status": model.status,
        "status_reason": model.status_reason,
        "settings_error": model.settings_error,
        "target": model.target.to_dict(),
        "features": list(model.features),
        "settings": model.settings.public(),
        "training_metrics": model.training_metrics,
        "sha256": model.artifact_sha256,
    }


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

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await import_bundle(conn, loaded, activate=activate)

    model = run(service)
    console.print(f"{model.name}: imported ({model.status})")


@app.command("list")
def list_command(as_json: bool = JSON_OPTION) -> None:
    """All models with status, target and key settings."""

    async def service(settings: Settings) -> list[ModelRecord]:
        async with connection(settings) as conn:
            return await registry.list_models(conn)

    models = run(service)
    if as_json:
        print_json([_summary(m) for m in models])
        return
    table = Table("name", "algorithm", "target", "status", "weight", "threshold", "reason")
    for m in models:
        table.add_row(
            m.name,
            m.algorithm,
            m.target.describe(),
            m.status,
            "?" if m.settings_error else f"{m.settings.weight:g}",
            "?" if m.settings_error else f"{m.settings.alert_threshold:g}",
            m.status_reason or m.settings_error or "",
        )
    console.print(table)


@app.command()
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Everything about one model."""

    async def service(settings: Settings) -> dict[str, object]:
        async with connection(settings) as conn:
            model = await registry.get(conn, name)
            set_aside = await set_aside_counts(conn, model.id)
        return {**_summary(model), "set_aside": set_aside}

    data = run(service)
    if as_json:
        print_json(data)
    else:
        console.print_json(data=data)


def _change_status(name: str, status: Status, reason: str | None) -> ModelRecord:
    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await registry.set_status(conn, name, status, reason)

    return run(service)


@app.command()
def activate(name: str) -> None:
    """Start scoring new events with this model (running servers pick it up live)."""
    _change_status(name, "active", None)
    console.print(f"{name}: active")


@app.command()
def deactivate(name: str) -> None:
    """Stop scoring with this model; its predictions stay."""
    _change_status(name, "inactive", "deactivated by operator")
    console.print(f"{name}: inactive")


@app.command()
def resume(name: str) -> None:
    """Bring a quarantined model back; it continues at its cursor, nothing was lost."""

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            model = await registry.get(conn, name)
            if model.status != "quarantined":
                typer.echo(f"{name} is {model.status}, not quarantined; nothing to resume", err=True)
                raise typer.Exit(1)
            return await registry.set_status(conn, name, "active", None)

    run(service)
    console.print(f"{name}: active")


@app.command("set")
def set_command(name: str, assignments: list[str] = typer.Argument(..., metavar="KEY=VALUE...")) -> None:
    """Change settings, e.g. `alert_threshold=0.8 phases=1,2 weight=4`; takes effect without restart."""

    async def service(settings: Settings) -> ModelRecord:
        changes = parse_assignments(assignments)
        async with connection(settings) as conn:
            return await registry.change_settings(conn, name, changes)

    model = run(service)
    console.print_json(data={k: model.settings.public()[k] for k in parse_assignments(assignments)})
