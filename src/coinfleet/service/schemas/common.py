"""What every service record shares: the base class, the literal types and the bounds of a query."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["active", "inactive", "quarantined", "deleted"]
Tag = Literal["negative", "positive", "alert"]
EvaluationState = Literal["waiting", "evaluated"]
Result = Literal["success", "failed", "not_applicable"]
Rule = Literal["horizon", "within"]
AlertState = Literal["pending", "delivered", "dead"]

#: rows in one page when a query does not say
DEFAULT_PAGE_SIZE = 50
#: most rows one page may hold
MAX_PAGE_SIZE = 500
#: lag, alert and event counts stop at this many (a bounded count stays cheap on a huge backlog)
COUNT_CAP = 100_000
#: a lane's events behind its cursor are counted exactly up to this many, then estimated (a page listing
#: models needs "many", and counting 100,000 events per model made every listing slow)
EXACT_LAG_EVENTS = 1_000
#: most coin_metrics rows, predictions and alerts in one coin detail
MAX_COIN_ROWS = 5_000


class Schema(BaseModel):
    """Base of every service record: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]


def check_range(low: float | datetime | None, high: float | datetime | None, what: str) -> None:
    """ValueError (a 422 at the API) when a query's lower bound is above its upper bound."""
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise ValueError(f"{what}: the lower bound {low} is above the upper bound {high}")
