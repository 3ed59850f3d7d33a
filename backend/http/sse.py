"""Chat events as Server-Sent Events (sse-starlette): ids for re-attach, keep-alive comments."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from backend.chat.events import StreamEvent
from backend.core.i18n import message_for

RETRY_MS = 2000


def _encode(event: StreamEvent, locale: str) -> ServerSentEvent:
    data = event.data
    if event.event == "error":  # the text in the listener's language, the code as stored
        data = {**data, "message": message_for(str(data.get("code")), locale)}
    return ServerSentEvent(data=json.dumps(data, ensure_ascii=False), event=event.event, id=event.id, retry=RETRY_MS)


async def _frames(events: AsyncIterator[StreamEvent], locale: str) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield _encode(event, locale)


# On shutdown the server interrupts its own answers and ends the streams that follow other
# workers' answers, each with a terminal event; this is how long those last events may take.
SHUTDOWN_GRACE_S = 5.0


def event_stream(events: AsyncIterator[StreamEvent], *, locale: str, keepalive_s: float) -> EventSourceResponse:
    """A closed connection only ends this listener; the generation itself carries on."""
    return EventSourceResponse(
        _frames(events, locale), ping=keepalive_s, shutdown_event=anyio.Event(),
        shutdown_grace_period=SHUTDOWN_GRACE_S,
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
