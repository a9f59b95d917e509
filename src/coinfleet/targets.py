"""What a model predicts: a % price move within a horizon, or a classic variable/operator/value test."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Direction = Literal["up", "down"]
Operator = Literal[">", "<", ">=", "<=", "="]
OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=", "=")


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """A model's target; `kind` says which of the two families it belongs to.

    change:  price moves by `change_percent` % in `direction` within `horizon_seconds`.
    classic: `variable` `operator` `value` holds at the end of `horizon_seconds`.
    """

    kind: Literal["change", "classic"]
    horizon_seconds: int
    direction: Direction | None = None
    change_percent: float | None = None
    variable: str | None = None
    operator: Operator | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.horizon_seconds <= 0:
            raise ValueError("horizon_seconds must be > 0")
        if self.kind == "change":
            if self.direction not in ("up", "down"):
                raise ValueError("a change target needs direction 'up' or 'down'")
            if self.change_percent is None or self.change_percent <= 0:
                raise ValueError("a change target needs change_percent > 0")
        elif self.kind == "classic":
            if not self.variable or self.operator not in OPERATORS or self.value is None:
                raise ValueError("a classic target needs variable, operator (> < >= <= =) and value")
        else:
            raise ValueError(f"unknown target kind {self.kind!r}; use 'change' or 'classic'")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without the unset fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        """Build from `to_dict` output; raises ValueError on bad input."""
        return cls(**data)

    def describe(self) -> str:
        """Short human text, e.g. 'up 10% in 120s'."""
        if self.kind == "change":
            return f"{self.direction} {self.change_percent:g}% in {self.horizon_seconds}s"
        return f"{self.variable} {self.operator} {self.value:g} at {self.horizon_seconds}s"
