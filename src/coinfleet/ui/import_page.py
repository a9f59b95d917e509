"""Import: upload a model file and its metadata, see it validated (or why it was refused), activate it."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nicegui import events, ui

from coinfleet.errors import CoinfleetError
from coinfleet.models.bundle import META_SUFFIX, read_bundle
from coinfleet.service.schemas import Model
from coinfleet.ui import actions
from coinfleet.ui.layout import frame

#: the largest model file the page accepts
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


@dataclass
class Uploaded:
    """The files received so far, by name."""

    files: dict[str, bytes] = field(default_factory=dict)

    def metadata_name(self) -> str | None:
        """The name of the metadata file, if one came."""
        return next((name for name in self.files if name.endswith(META_SUFFIX)), None)


def _artifact_named(meta: bytes) -> str:
    try:
        return str(json.loads(meta)["artifact"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CoinfleetError(f"the metadata file is not a coinfleet model description: {exc}") from exc


async def import_uploaded(uploaded: Uploaded, *, name: str, activate: bool) -> Model:
    """Validate and register the uploaded bundle; the model, or CoinfleetError saying why not."""
    meta_name = uploaded.metadata_name()
    if meta_name is None:
        raise CoinfleetError(f"upload the metadata file (*{META_SUFFIX}) written by `coinfleet train`")
    artifact = _artifact_named(uploaded.files[meta_name])
    if artifact not in uploaded.files:
        raise CoinfleetError(f"the metadata names the model file {artifact!r}: upload that file too")
    with tempfile.TemporaryDirectory(prefix="coinfleet-import-") as folder:
        for file_name in (meta_name, artifact):
            (Path(folder) / Path(file_name).name).write_bytes(uploaded.files[file_name])
        bundle = read_bundle(Path(folder) / Path(meta_name).name)
    return await actions.import_bundle(bundle, name=name or None, activate=activate)


def validated(model: Model) -> str:
    """What the checks found in an imported model: what it is, what it reads and predicts, its state."""
    return (
        f"imported {model.name}: {model.format} file, {model.algorithm}, {len(model.features)} features "
        f"(loaded and dry-run), predicts {model.target.description} · {model.status}"
    )


@ui.page("/import")
async def import_page() -> None:
    """Model import."""
    uploaded = Uploaded()
    with frame("Import a model") as shown:
        if not shown:
            return
        ui.markdown(
            f"Upload the two files `coinfleet train` writes: the metadata (`*{META_SUFFIX}`) and the model "
            "file it names (XGBoost JSON, LightGBM text, skops or ONNX). The model is loaded, its features "
            "checked and a dry run made before anything is stored; a refused model changes nothing."
        )
        received = ui.label("no files yet").props("data-testid=import-files")

        async def on_upload(e: events.UploadEventArguments) -> None:
            uploaded.files[e.file.name] = await e.file.read()
            received.set_text("received: " + ", ".join(sorted(uploaded.files)))

        ui.upload(on_upload=on_upload, multiple=True, auto_upload=True, max_file_size=MAX_UPLOAD_BYTES).props(
            "data-testid=import-upload label='Model files'"
        ).classes("w-96")
        with ui.row().classes("items-end gap-4"):
            name = (
                ui.input("Name (default: from the metadata)").classes("w-72").props("data-testid=import-name")
            )
            activate = ui.checkbox("Activate after import").props("data-testid=import-activate")
        result = ui.label().props("data-testid=import-result")

        async def run_import() -> None:
            result.classes(remove="text-red-700 text-green-700")
            try:
                model = await import_uploaded(uploaded, name=name.value.strip(), activate=activate.value)
            except CoinfleetError as exc:
                result.set_text(f"refused: {exc}")
                result.classes(add="text-red-700")
                return
            result.set_text(validated(model))
            result.classes(add="text-green-700")
            ui.link(f"open {model.name}", f"/models/{model.name}").props("data-testid=import-open")

        ui.button("Validate and import", on_click=run_import).props("data-testid=import-run")
