"""Request bodies over the limit get 413 in the common error shape, before a route reads them."""

from __future__ import annotations

import json

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import error_body
from backend.core.i18n import locale_from_header, message_for


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 before a route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = HTTPConnection(scope).headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await _too_large(scope, send)
            return
        seen, answered, started = 0, False, False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not answered:  # once 413 went out, whatever the app answers is dropped
                started = started or message["type"] == "http.response.start"
                await send(message)

        async def counted() -> Message:
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if not started:
                        answered = True
                        await _too_large(scope, send)
                    return {"type": "http.disconnect"}  # the app stops reading, as if the client left
            return message

        await self.app(scope, counted, guarded_send)


async def _too_large(scope: Scope, send: Send) -> None:
    locale = locale_from_header(HTTPConnection(scope).headers.get("accept-language"))
    body = json.dumps(
        error_body("payload_too_large", message_for("payload_too_large", locale)), ensure_ascii=False
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body.encode())).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
