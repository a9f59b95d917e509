"""What a `coinfleet demo` run shows: one line per model, and the snapshot the live table and the
`--json` summary are made of."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class ModelLine:
    """One model's row in the live table and the summary."""

    name: str
    algorithm: str
    target: str
    events: int
    lag_events: int
    predictions: dict[str, int]
    last_probability: float | None
    errors: int
    brier_validation: float | None = None  #: on the training's validation split
    brier_live: float | None = None  #: over the run's judged predictions (final snapshot only)
    evaluated: int = 0  #: predictions judged so far (final snapshot only)
    hit_rate_at_horizon: float | None = None  #: final snapshot only
    hit_rate_within: float | None = None  #: final snapshot only


@dataclass(frozen=True, kw_only=True)
class DemoSnapshot:
    """The state of the run at one moment."""

    elapsed: float
    events: int
    feeding: bool
    models: list[ModelLine] = field(default_factory=list)
    database: str = ""  #: where the models and results are: "main" or the demo database's name

    def as_json(self) -> dict[str, object]:
        """The documented `--json` summary."""
        return {
            "events": self.events,
            "database": self.database,
            "models": [
                {
                    "name": m.name,
                    "predictions": sum(m.predictions.values()),
                    "alerts": m.predictions.get("alert", 0),
                    "lag_events": m.lag_events,
                    "brier_validation": m.brier_validation,
                    "brier_live": m.brier_live,
                    "by_tag": m.predictions,
                    "evaluated": m.evaluated,
                    "hit_rate_at_horizon": m.hit_rate_at_horizon,
                    "hit_rate_within": m.hit_rate_within,
                }
                for m in self.models
            ],
        }
