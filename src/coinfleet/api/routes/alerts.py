"""/api/alerts: the webhook outbox, attempts, retry one or all dead, test send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from coinfleet.api.auth import require_read, require_write
from coinfleet.api.routes.deps import AppSettings, Pool
from coinfleet.errors import Conflict
from coinfleet.service import alerts as service
from coinfleet.service.schemas import AlertDetail, AlertPage, AlertQuery, WebhookTest

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
AlertId = Annotated[int, Path(description="the alert's id", ge=1, le=2**63 - 1)]


class Retried(BaseModel):
    """How many dead alerts went back into the queue."""

    retried: int


class TestSend(BaseModel):
    """Where to send a signed sample alert."""

    url: str = Field(min_length=1, max_length=2000, description="the webhook URL (the SSRF guard applies)")
    model: str | None = Field(None, max_length=200, description="sign and shape it as this model's alerts")


@router.get("", response_model=AlertPage, dependencies=[Depends(require_read)], summary="The outbox")
async def list_alerts(db: Pool, wanted: Annotated[AlertQuery, Query()]) -> AlertPage:
    """Newest first, optionally one model's and one state's; keyset pages."""
    return await service.list_alerts(db, wanted)


@router.get(
    "/{alert_id}", response_model=AlertDetail, dependencies=[Depends(require_read)], summary="One alert"
)
async def alert_detail(db: Pool, alert_id: AlertId) -> AlertDetail:
    """The alert and each delivery attempt."""
    return await service.alert_detail(db, alert_id)


@router.post(
    "/{alert_id}/retry", response_model=Retried, dependencies=[Depends(require_write)], summary="Retry one"
)
async def retry_one(db: Pool, alert_id: AlertId, settings: AppSettings) -> Retried:
    """Put one dead alert back in the queue, to its model's current webhook URL; 409 unless it is dead."""
    count = await service.retry_alert(db, alert_id, default_url=settings.default_webhook_url)
    if not count:
        raise Conflict(f"alert {alert_id} is not dead; only dead alerts are retried")
    return Retried(retried=count)


@router.post(
    "/retry-dead", response_model=Retried, dependencies=[Depends(require_write)], summary="Retry dead"
)
async def retry_dead(
    db: Pool,
    settings: AppSettings,
    model: Annotated[str, Query(description="the model's name", max_length=200)],
) -> Retried:
    """Put every dead alert of the model back in the queue."""
    return Retried(
        retried=await service.retry_dead_alerts(db, model, default_url=settings.default_webhook_url)
    )


@router.post("/test", response_model=WebhookTest, dependencies=[Depends(require_write)], summary="Test send")
async def test_send(db: Pool, settings: AppSettings, body: TestSend) -> WebhookTest:
    """POST one signed sample alert to the URL and report the answer; 422 when the URL is refused."""
    return await service.send_test_alert(settings, body.url, db=db, model=body.model)
