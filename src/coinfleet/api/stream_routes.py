"""`/api/stream`: Server-Sent Events of new predictions, alerts and model changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from coinfleet.api.auth import require_read
from coinfleet.api.state import shared
from coinfleet.api.stream import Kind, StreamFilter, StreamHub, Subscriber

router = APIRouter(prefix="/api", tags=["stream"], dependencies=[Depends(require_read)])
Tag = Literal["negative", "positive", "alert"]
#: seconds between keep-alive comments on a quiet stream
PING_SECONDS = 15
#: a client that does not take a message within this many seconds is disconnected
SEND_TIMEOUT_SECONDS = 5.0


def _optional(values: list[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values else None


async def _messages(subscriber: Subscriber) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(data="{}", event="subscribed")
    async for event in subscriber.events():
        yield ServerSentEvent(data=event.encoded(), event=event.kind, id=f"{event.kind}-{event.id}")
    if subscriber.cut_off.is_set():
        yield ServerSentEvent(data='{"reason": "client fell too far behind"}', event="cut_off")


@router.get(
    "/stream",
    summary="Live events (Server-Sent Events): new predictions, alerts and model changes",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    model: Annotated[list[str] | None, Query(description="Only these models (repeat the parameter)")] = None,
    tag: Annotated[list[Tag] | None, Query(description="Only predictions and alerts with these tags")] = None,
    kind: Annotated[list[Kind] | None, Query(description="Only these kinds")] = None,
) -> EventSourceResponse:
    """First `subscribed` (events from then on are sent), then one `event:` per new prediction
    (`prediction`), queued alert (`alert`) or model change (`model`), its JSON in `data:`. A client
    that falls a full queue behind gets `cut_off` and is disconnected."""
    hub: StreamHub = shared(request).stream
    wanted = StreamFilter(
        models=_optional(model), tags=_optional(list(tag or [])), kinds=_optional(list(kind or []))
    )

    async def body() -> AsyncIterator[ServerSentEvent]:
        with hub.subscription(wanted) as subscriber:
            async for message in _messages(subscriber):
                yield message

    return EventSourceResponse(body(), ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)
