"""What a model is, declared once: training writes it, bundles carry it, the registry stores it.

`ModelDescription` says how to load the model and what it reads and predicts; `ModelSpec` adds the file
itself. A trained model, a bundle and a model about to be registered are each a `ModelSpec` with their
own extra fields; a registered model (`registry.ModelRecord`) is a `ModelDescription` with the file's
hash in place of its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

from coinfleet.targets import TargetSpec


@dataclass(frozen=True, kw_only=True)
class ModelDescription:
    """How to load a model and what it reads and predicts."""

    algorithm: str  #: the learning algorithm that made it (xgboost, lightgbm, …)
    format: str  #: the artifact's format, for `formats.load_predictor`
    features: tuple[str, ...]  #: feature names in the model's input order
    target: TargetSpec


@dataclass(frozen=True, kw_only=True)
class ModelSpec(ModelDescription):
    """A model with its file."""

    artifact: bytes = field(repr=False)  #: the model file as its library wrote it

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of the artifact, as the registry records it."""
        return hashlib.sha256(self.artifact).hexdigest()

    def spec_fields(self) -> dict[str, Any]:
        """The spec's fields by name, to build another record of the same model: `Other(**spec_fields())`."""
        return {f.name: getattr(self, f.name) for f in fields(ModelSpec)}
