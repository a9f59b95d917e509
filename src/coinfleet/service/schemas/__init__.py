"""The typed records the service layer takes and returns: what the CLI, API, UI and MCP server exchange.

Records are frozen pydantic models ("schemas": "model" means an ML model here). Queries validate their
own values, so a bad filter fails before any SQL runs, with a message that says what to send instead.
One module per area; import every record from here (`from coinfleet.service.schemas import Model`).
"""

from coinfleet.service.schemas.alerts import (
    Alert,
    AlertAttempt,
    AlertDetail,
    AlertPage,
    AlertQuery,
    WebhookTest,
)
from coinfleet.service.schemas.coins import CoinDetail, CoinModel
from coinfleet.service.schemas.common import (
    COUNT_CAP,
    DEFAULT_PAGE_SIZE,
    EXACT_LAG_EVENTS,
    MAX_COIN_ROWS,
    MAX_PAGE_SIZE,
    AlertState,
    EvaluationState,
    PageSize,
    Result,
    Rule,
    Schema,
    Status,
    Tag,
)
from coinfleet.service.schemas.models import Health, LagReport, Lane, Model, Target
from coinfleet.service.schemas.predictions import (
    Evaluation,
    Prediction,
    PredictionPage,
    PredictionQuery,
)
from coinfleet.service.schemas.statistics import (
    BacktestReport,
    CalibrationFigures,
    CalibrationReport,
    Coverage,
    DriftReport,
    FeatureDrift,
    FeedStall,
    ReliabilityBucket,
    RuleComparison,
    Statistics,
    StatisticsReport,
)

__all__ = [
    "COUNT_CAP",
    "DEFAULT_PAGE_SIZE",
    "EXACT_LAG_EVENTS",
    "MAX_COIN_ROWS",
    "MAX_PAGE_SIZE",
    "Alert",
    "AlertAttempt",
    "AlertDetail",
    "AlertPage",
    "AlertQuery",
    "AlertState",
    "BacktestReport",
    "CalibrationFigures",
    "CalibrationReport",
    "CoinDetail",
    "CoinModel",
    "Coverage",
    "DriftReport",
    "Evaluation",
    "EvaluationState",
    "FeatureDrift",
    "FeedStall",
    "Health",
    "LagReport",
    "Lane",
    "Model",
    "PageSize",
    "Prediction",
    "PredictionPage",
    "PredictionQuery",
    "ReliabilityBucket",
    "Result",
    "Rule",
    "RuleComparison",
    "Schema",
    "Statistics",
    "StatisticsReport",
    "Status",
    "Tag",
    "Target",
    "WebhookTest",
]
