"""`coinfleet models …`: list, show, activate, deactivate and change settings of models."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, err_console, print_json, run
from coinfleet.config import Settings
from coinfleet.models import registry
from coinfleet.models.importing import PICKLE_WARNING
from coinfleet.models.metadata import flag_metadata
from coinfleet.models.registry import ModelRecord, Status
from coinfleet.models.settings import apply_changes, parse_assignments
from coinfleet.service import versions as versioning
from coinfleet.service.importing import import_model, request_from_path, sandbox_limits

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
        "target": model.target.to_dict(),
        "features": list(model.features),
        "settings": model.settings.public(),
        "training_metrics": model.training_metrics,
        "sha256": model.artifact_sha256,
        "source": model.source,
    }


@app.command("import")
def import_command(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="A model file (.onnx .json .ubj .txt .skops, .pkl with --trust) or a bundle NAME.model.json.",
    ),
    meta: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Metadata JSON/TOML (default: FILE.meta.json or .meta.toml)."
    ),
    features: str | None = typer.Option(None, help="Feature names in training order, comma-separated."),
    target: str | None = typer.Option(None, help="E.g. 'up 10% in 5m' or 'price_close > 0.0001 at 600s'."),
    phases: str | None = typer.Option(None, help="Phases the model scores, e.g. 1,2 (default: all)."),
    threshold: float | None = typer.Option(None, help="Alert threshold (default 0.7)."),
    fmt: str | None = typer.Option(None, "--format", help="xgboost-json lightgbm-text skops onnx pickle"),
    algorithm: str | None = typer.Option(None, help="Algorithm name shown in lists."),
    name: str | None = typer.Option(None, help="Register under this name (default: the file's)."),
    artifact: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="A bundle's model file where it is not beside the bundle."
    ),
    trust: bool = typer.Option(
        False,
        "--trust",
        help="Allow a pickle/joblib file: loading it runs its code. Only for files you trust.",
    ),
    activate: bool = typer.Option(False, "--activate", help="Activate it right away."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a model file in a sandboxed process, then register it; a refused file changes nothing."""
    if trust:
        err_console.print(f"[yellow]warning:[/yellow] {PICKLE_WARNING.removesuffix(', with --trust')}")

    async def service(settings: Settings) -> ModelRecord:
        request = request_from_path(
            file,
            flags=flag_metadata(
                name=name, features=features, target=target, phases=phases,
                threshold=threshold, fmt=fmt, algorithm=algorithm,
            ),
            settings=settings,
            meta_path=meta,
            artifact_path=artifact,
            trusted=trust,
            activate=activate,
        )  # fmt: skip
        async with connection(settings) as conn:
            return await import_model(conn, request, settings)

    model = run(service)
    if as_json:
        print_json(_summary(model))
        return
    serving = model.source.get("serving", {})
    how = "compiled ONNX" if serving.get("compiled") else f"native ({serving.get('reason')})"
    console.print(f"{model.name}: imported ({model.status}), {len(model.features)} features, serves {how}")


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
            f"{m.settings.weight:g}",
            f"{m.settings.alert_threshold:g}",
            m.status_reason or "",
        )
    console.print(table)


@app.command()
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Everything about one model."""

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await registry.get(conn, name)

    data = _summary(run(service))
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
            model = await registry.get(conn, name)
            return await registry.update_settings(conn, name, apply_changes(model.settings, changes))

    model = run(service)
    console.print_json(data={k: model.settings.public()[k] for k in parse_assignments(assignments)})


@app.command("replace")
def replace_command(
    name: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The new model file (or bundle)."),
    meta: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Metadata JSON/TOML."),
    features: str | None = typer.Option(None, help="Feature names (default: the current version's)."),
    target: str | None = typer.Option(None, help="Target (default: the current version's)."),
    fmt: str | None = typer.Option(None, "--format", help="xgboost-json lightgbm-text skops onnx pickle"),
    trust: bool = typer.Option(
        False, "--trust", help="Allow a pickle/joblib file: loading it runs its code."
    ),
) -> None:
    """Check a file and serve it as the model's next version; a refused file keeps the current one."""

    async def service(settings: Settings) -> ModelRecord:
        request = request_from_path(
            file,
            flags=flag_metadata(features=features, target=target, fmt=fmt),
            settings=settings,
            meta_path=meta,
            trusted=trust,
        )
        async with connection(settings) as conn:
            return await versioning.replace_model(conn, name, request, limits=sandbox_limits(settings))

    model = run(service)
    console.print(f"{model.name}: now serves version {model.version}")


@app.command()
def promote(name: str, version: int) -> None:
    """Serve another version of the model (newer or older); its lane restarts at the model's cursor."""

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await versioning.promote(conn, name, version)

    model = run(service)
    console.print(f"{model.name}: now serves version {model.version}")


@app.command("versions")
def versions_command(name: str, as_json: bool = JSON_OPTION) -> None:
    """Every version of a model."""

    async def service(settings: Settings) -> tuple[ModelRecord, list[registry.ModelVersion]]:
        async with connection(settings) as conn:
            return await registry.get(conn, name), await registry.list_versions(conn, name)

    model, found = run(service)
    rows = [
        {
            "version": v.version,
            "serving": v.version == model.version,
            "algorithm": v.algorithm,
            "format": v.format,
            "target": v.target.describe(),
            "features": len(v.features),
            "sha256": v.artifact_sha256,
            "created_at": v.created_at.isoformat(),
        }
        for v in found
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(*rows[0].keys()) if rows else Table("version")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)


@app.command()
def export(
    name: str,
    out: Path = typer.Option(Path("."), file_okay=False, help="Folder to write the file and metadata into."),
    version: int | None = typer.Option(None, help="Version to export (default: the one serving)."),
) -> None:
    """Write the model file and NAME.model.json, which `models import` takes back."""

    async def service(settings: Settings) -> Path:
        async with connection(settings) as conn:
            return await versioning.export_model(conn, name, out, version=version)

    console.print(str(run(service)))


@app.command()
def rename(name: str, new_name: str) -> None:
    """Give a model another name; its predictions, versions and settings stay with it."""

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await registry.rename(conn, name, new_name)

    console.print(f"{name}: renamed to {run(service).name}")


@app.command()
def delete(name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Stop and remove a model from the lists; its predictions stay, its name is free again."""
    if not yes:
        typer.confirm(f"delete model {name!r}?", abort=True)

    async def service(settings: Settings) -> ModelRecord:
        async with connection(settings) as conn:
            return await registry.delete(conn, name)

    run(service)
    console.print(f"{name}: deleted")
