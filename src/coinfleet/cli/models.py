"""`coinfleet models …`: list, show, import, activate, deactivate, resume and change settings of models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from coinfleet.cli.common import connection, console, err_console, print_json, run
from coinfleet.cli.tables import WIDE_OPTION, Column, make_table, print_table
from coinfleet.config import Settings
from coinfleet.constants import DEFAULT_ALERT_THRESHOLD
from coinfleet.models.formats import FORMATS, SUFFIXES
from coinfleet.models.importing import PICKLE_WARNING
from coinfleet.models.metadata import flag_metadata
from coinfleet.models.registry import ModelVersion
from coinfleet.models.settings import key_summaries, parse_assignments
from coinfleet.service import importing, model_admin, models, versions
from coinfleet.service.common import Db
from coinfleet.service.importing import request_from_path, sandbox_limits
from coinfleet.service.schemas import Model

#: the import's threshold when none is given: the metadata's, else the default
THRESHOLD_HELP = f"Alert threshold (default: the metadata's, else {DEFAULT_ALERT_THRESHOLD:g})."

app = typer.Typer(rich_markup_mode=None, help="The model registry.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object.")
#: what `models list --json` and `models show` print of a model (the lane is shown by `coinfleet lag`)
SUMMARY_FIELDS = {
    "id", "name", "version", "algorithm", "format", "status", "status_reason", "settings_error",
    "target", "features", "settings", "training_metrics", "sha256", "source", "set_aside",
}  # fmt: skip
FORMAT_HELP = f"{' '.join(FORMATS)} pickle (default: from the file)"
FILE_HELP = f"A model file ({' '.join(SUFFIXES)}, .pkl with --trust) or a bundle NAME.model.json."
TRUST_OPTION = typer.Option(
    False, "--trust", help="Allow a pickle/joblib file: loading it runs its code. Only for files you trust."
)


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
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help=FILE_HELP,
    ),
    meta: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Metadata JSON/TOML (default: FILE.meta.json or .meta.toml)."
    ),
    features: str | None = typer.Option(None, help="Feature names in training order, comma-separated."),
    target: str | None = typer.Option(None, help="E.g. 'up 10% in 5m' or 'price_close > 0.0001 at 600s'."),
    phases: str | None = typer.Option(None, help="Phases the model scores, e.g. 1,2 (default: all)."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    algorithm: str | None = typer.Option(None, help="Algorithm name shown in lists."),
    name: str | None = typer.Option(None, help="Register under this name (default: the file's)."),
    artifact: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="A bundle's model file where it is not beside the bundle."
    ),
    trust: bool = TRUST_OPTION,
    activate: bool = typer.Option(False, "--activate", help="Activate it right away."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a model file in a sandboxed process, then register it; a refused file changes nothing."""
    _warn_if_trusted(trust)
    flags = flag_metadata(
        name=name, features=features, target=target, phases=phases, threshold=threshold, fmt=fmt,
        algorithm=algorithm,
    )  # fmt: skip

    async def service(settings: Settings) -> Model:
        request = request_from_path(
            file, flags=flags, settings=settings, meta_path=meta, artifact_path=artifact, trusted=trust,
            activate=activate,
        )  # fmt: skip
        async with connection(settings) as db:
            return await importing.import_file(db, request, limits=sandbox_limits(settings))

    model = run(service)
    if as_json:
        print_json(_summary(model))
        return
    console.print(
        f"{model.name}: imported ({model.status}), {len(model.features)} features, {_serving(model)}"
    )


def _warn_if_trusted(trust: bool) -> None:
    if trust:
        err_console.print(f"[yellow]warning:[/yellow] {PICKLE_WARNING.removesuffix(', with --trust')}")


def _owner(model: Model) -> str:
    """The worker scoring the model and its lease's epoch; "-" when nobody holds it."""
    lane = model.lane
    return "-" if lane.owner is None else f"{lane.owner} (epoch {lane.lease_epoch})"


def _serving(model: Model) -> str:
    serving = model.source.get("serving", {})
    if model.format == "onnx":
        return "serves its ONNX graph"
    return "serves compiled ONNX" if serving.get("compiled") else f"serves natively ({serving.get('reason')})"


MODEL_COLUMNS = (
    Column("name", name=True),
    Column("algorithm", narrow=False, text=True),
    Column("target", text=True),
    Column("status", text=True),
    Column("weight", narrow=False),
    Column("threshold"),
    Column("reason", text=True),
    Column("owner", narrow=False, text=True),
)


@app.command("list")
def list_command(as_json: bool = JSON_OPTION, wide: bool = WIDE_OPTION) -> None:
    """All models with status, target and key settings."""

    async def service(settings: Settings) -> list[Model]:
        async with connection(settings) as db:
            return await models.list_models(db)

    found = run(service)
    if as_json:
        print_json([_summary(m) for m in found])
        return
    rows = [
        (
            m.name,
            m.algorithm,
            m.target.description,
            m.status,
            "?" if m.settings_error else f"{m.settings['weight']:g}",
            "?" if m.settings_error else f"{m.settings['alert_threshold']:g}",
            m.status_reason or m.settings_error or "",
            _owner(m),
        )
        for m in found
    ]
    print_table(console, make_table(None, MODEL_COLUMNS, rows, wide=wide), wide=wide)


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


#: the keys `models set` takes, from the settings model ("\b": click prints the block as it is)
SET_EPILOG = "\b\nSettings (lists are comma-separated; none clears):\n" + "\n".join(
    f"  {line}" for line in key_summaries()
)


@app.command("set", epilog=SET_EPILOG)
def set_command(name: str, assignments: list[str] = typer.Argument(..., metavar="KEY=VALUE...")) -> None:
    """Change settings, e.g. `alert_threshold=0.8 phases=1,2 weight=4`; takes effect without restart."""

    async def service(settings: Settings) -> tuple[dict[str, Any], Model]:
        changes = parse_assignments(assignments)
        async with connection(settings) as db:
            return changes, await models.update_settings(
                db, name, changes, allow_private=settings.webhook_allow_private
            )

    changes, model = run(service)
    console.print_json(data={k: model.settings[k] for k in changes})


@app.command("replace")
def replace_command(
    name: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The new model file (or bundle)."),
    meta: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Metadata JSON/TOML."),
    features: str | None = typer.Option(None, help="Feature names (default: the current version's)."),
    target: str | None = typer.Option(None, help="Target (default: the current version's)."),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    trust: bool = TRUST_OPTION,
    shadow: bool = typer.Option(
        False, "--shadow", help="Score it beside the live version (no alerts) until `models promote`."
    ),
) -> None:
    """Check a file and serve it as the model's next version (or as a shadow); a refused file changes
    nothing."""
    _warn_if_trusted(trust)
    flags = flag_metadata(features=features, target=target, fmt=fmt)

    async def service(settings: Settings) -> Model:
        request = request_from_path(file, flags=flags, settings=settings, meta_path=meta, trusted=trust)
        async with connection(settings) as db:
            limits = sandbox_limits(settings)
            return await versions.replace_model(db, name, request, limits=limits, shadow=shadow)

    model = run(service)
    if shadow:
        console.print(f"{model.name}: scores version {model.version} of {name} beside it, {_serving(model)}")
    else:
        console.print(f"{model.name}: now serves version {model.version}, {_serving(model)}")


@app.command()
def compare(name: str, as_json: bool = JSON_OPTION) -> None:
    """The live version and its shadow on the same events: hit rate, alert precision, alert gain."""

    async def service(settings: Settings) -> list[versions.VersionScore]:
        async with connection(settings) as db:
            return await versions.compare(db, name)

    scores = run(service)
    if as_json:
        print_json([s.model_dump() for s in scores])
        return
    table = Table(
        "side", "version", "events", "alerts", "evaluated", "hit rate", "alert precision", "alert gain %"
    )
    for s in scores:
        table.add_row(
            s.side, str(s.version), str(s.events), str(s.alerts), str(s.evaluated),
            _share(s.hit_rate), _share(s.alert_precision),
            "" if s.alert_gain_avg_pct is None else f"{s.alert_gain_avg_pct:+.2f}",
        )  # fmt: skip
    console.print(table)


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


@app.command()
def promote(name: str, version: int) -> None:
    """Serve another version of the model (newer or older); its lane restarts at the model's cursor."""
    model = _call(lambda db: versions.promote(db, name, version))
    console.print(f"{model.name}: now serves version {model.version}")


@app.command("versions")
def versions_command(name: str, as_json: bool = JSON_OPTION) -> None:
    """Every version of a model."""

    async def service(settings: Settings) -> tuple[Model, list[ModelVersion]]:
        async with connection(settings) as db:
            return await models.show_model(db, name), await versions.list_versions(db, name)

    model, found = run(service)
    rows = [_version_row(v, serving=v.version == model.version) for v in found]
    if as_json:
        print_json(rows)
        return
    table = Table("version", "serving", "algorithm", "format", "target", "features", "sha256", "created_at")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)


def _version_row(version: ModelVersion, *, serving: bool) -> dict[str, Any]:
    return {
        "version": version.version,
        "serving": serving,
        "algorithm": version.algorithm,
        "format": version.format,
        "target": version.target.describe(),
        "features": len(version.features),
        "sha256": version.artifact_sha256,
        "created_at": version.created_at.isoformat(),
    }


@app.command()
def export(
    name: str,
    out: Path = typer.Option(Path("."), file_okay=False, help="Folder to write the file and metadata into."),
    version: int | None = typer.Option(None, help="Version to export (default: the one serving)."),
) -> None:
    """Write the model file and NAME.model.json, which `models import` takes back."""

    async def service(settings: Settings) -> Path:
        async with connection(settings) as db:
            return await versions.export_model(db, name, out, version=version)

    console.print(str(run(service)))


@app.command()
def rename(name: str, new_name: str) -> None:
    """Give a model another name; its predictions, versions and settings stay with it."""
    model = _call(lambda db: versions.rename_model(db, name, new_name))
    console.print(f"{name}: renamed to {model.name}")


@app.command()
def delete(name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Stop and remove a model from the lists; its predictions stay, its name is free again."""
    if not yes:
        _call(lambda db: models.show_model(db, name))  # a wrong name is an error, not a question
        typer.confirm(f"delete model {name!r}?", abort=True)

    async def service(settings: Settings) -> None:
        async with connection(settings) as db:
            await model_admin.delete_model(db, name, with_history=False)

    run(service)
    console.print(f"{name}: deleted")
