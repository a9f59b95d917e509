"""`/api/stream`: Server-Sent Events of new predictions, alerts and model changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
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


async def _messages(
    hub: StreamHub, subscriber: Subscriber, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent | bytes]:
    yield ServerSentEvent(data="{}", event="subscribed")
    if subscriber.gap:
        gap = {"last_event_id": last_event_id, "reason": "that event is no longer kept; reload what you show"}
        yield ServerSentEvent(data=json.dumps(gap), event="gap")
    async for batch, start in subscriber.pieces():
        yield batch.sse(hub.replay.name, start)  # the rows' JSON as the triggers wrote it
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
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=100, description="resume after this event's `id:`"),
    ] = None,
) -> EventSourceResponse:
    """First `subscribed` (events from then on are sent), then one `event:` per new prediction
    (`prediction`), queued alert (`alert`) or model change (`model`), its JSON in `data:`. Past 250
    predictions of one model and tag (or alerts of one model) in one stored statement, the rest come
    as one `skipped` message with their counts by tag and id range (read them from /api/predictions).
    A client that falls a full queue behind gets `cut_off` and is disconnected. A client that reconnects with
    `Last-Event-ID` first gets the events it missed (the server keeps its last 10,000 and goes on
    reading for a minute after the last client left), or `gap` when that id is older than that or
    from before a restart."""
    hub: StreamHub = shared(request).stream
    wanted = StreamFilter(
        models=_optional(model), tags=_optional(list(tag or [])), kinds=_optional(list(kind or []))
    )

    await hub.watch()  # the triggers send rows from now on

    async def body() -> AsyncIterator[ServerSentEvent | bytes]:
        with hub.subscription(wanted, last_event_id) as subscriber:
            async for message in _messages(hub, subscriber, last_event_id):
                yield message

    return EventSourceResponse(body(), ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)
