"""Importing a model: validate everything first, so a failed import changes nothing."""

from __future__ import annotations

import asyncpg

from coinfleet.errors import ModelLoadError
from coinfleet.features.spec import validate_feature_names
from coinfleet.models import registry
from coinfleet.models.bundle import ModelBundle
from coinfleet.models.formats import load_predictor, validate_predictor
from coinfleet.models.registry import ModelRecord, NewModel
from coinfleet.models.settings import ModelSettings


def validate_bundle(bundle: ModelBundle) -> None:
    """The file loads, its features are ones coinfleet computes, and a dry run gives probabilities."""
    try:
        validate_feature_names(bundle.features)
    except ValueError as exc:
        raise ModelLoadError(f"model {bundle.name!r} is refused: {exc}") from exc
    predictor = load_predictor(bundle.format, bundle.artifact)
    validate_predictor(predictor, len(bundle.features))


async def import_bundle(
    conn: asyncpg.Connection,
    bundle: ModelBundle,
    *,
    settings: ModelSettings | None = None,
    activate: bool = False,
) -> ModelRecord:
    """Validate, then register (and optionally activate) the model."""
    validate_bundle(bundle)
    model = await registry.register(
        conn,
        NewModel(
            name=bundle.name,
            algorithm=bundle.algorithm,
            format=bundle.format,
            artifact=bundle.artifact,
            features=bundle.features,
            target=bundle.target,
            settings=settings or ModelSettings(alert_threshold=bundle.alert_threshold),
            training_metrics=bundle.metrics,
        ),
    )
    if activate:
        model = await registry.set_status(conn, model.name, "active")
    return model
