"""OpenAI-compatible API: POST /v1/chat/completions (stream and not), GET /v1/models.

Authenticated with `Authorization: Bearer <personal API token>` (a JWT works too), so the
`openai` client and the many tools built on it can talk to KoVR. Stateless: nothing is stored.
Images: `image_url` content parts with data: URIs only (a URL is never fetched).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from backend.api.deps import CurrentAuth, SettingsDep
from backend.chat import images as images_service
from backend.chat.completions import Conversation, Outcome, complete
from backend.chat.errors import ChatError
from backend.chat.http import ChatDep, locale_of
from backend.chat.openai_schemas import ChatCompletionRequest, ChatMessage, openai_error
from backend.chat.prompt import Exchange
from backend.core.errors import ApiError
from kovr.settings import Settings

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


def _error_response(exc: ChatError, locale: str) -> JSONResponse:
    return JSONResponse(openai_error(exc.message(locale), exc.code, exc.status_code), status_code=exc.status_code)


async def _conversation(messages: list[ChatMessage], settings: Settings) -> Conversation:
    """OpenAI messages → earlier exchanges + the last user turn (system text leads the first turn)."""
    system = "\n".join(m.text() for m in messages if m.role in ("system", "developer")).strip()
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ChatError("validation_error", 422, "the last message must be from the user")
    history: list[Exchange] = []
    pending: ChatMessage | None = None
    for message in turns[:-1]:
        if message.role == "user":
            pending = message
        elif pending is not None:
            history.append(Exchange(pending.text(), message.text(), bool(pending.image_urls())))
            pending = None
    last = turns[-1]
    question = last.text().strip()
    if system:
        target = history[0] if history else None
        if target is not None:
            history[0] = Exchange(f"{system}\n\n{target.user}", target.assistant, target.had_images)
        else:
            question = f"{system}\n\n{question}"
    urls = last.image_urls()
    if not question and not urls:
        raise ChatError("empty_message", 422)
    if len(question) > settings.max_message_chars:
        raise ChatError("message_too_long", 422)
    if len(urls) > settings.chat_max_images_per_message:
        raise ChatError("too_many_images", 422)
    return Conversation(history, question, await _model_images(urls, settings))


async def _model_images(urls: list[str], settings: Settings) -> list[str]:
    uris = []
    for url in urls:
        data = images_service.decode_data_uri(url, max_bytes=settings.max_image_bytes)
        await asyncio.to_thread(images_service.check_image, data, max_bytes=settings.max_image_bytes,
                                max_pixels=settings.max_image_pixels)
        uris.append(await asyncio.to_thread(images_service.model_data_uri, data))
    return uris


@router.get("/models")
async def list_models(auth: CurrentAuth, chat: ChatDep) -> dict[str, Any]:
    info = chat.model.cached_info
    model_id = info.model_id if info else "kovr"
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "kovr"}]}


@router.post("/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, auth: CurrentAuth, chat: ChatDep, settings: SettingsDep,
) -> Any:
    if auth.via == "cookie":  # programs only: a browser session would need CSRF protection here
        raise ApiError(401, "not_authenticated")
    locale = locale_of(request)
    limit = body.token_limit() or settings.chat_default_max_new_tokens
    try:
        if limit > settings.max_new_tokens_limit:
            raise ChatError("invalid_parameters", 422)
        conversation = await _conversation(body.messages, settings)
    except ChatError as exc:
        return _error_response(exc, locale)
    outcome = Outcome()
    pieces = complete(chat.model, conversation, max_new_tokens=limit, temperature=body.temperature,
                      top_p=body.top_p, stop=body.stop_list(), seed=body.seed, outcome=outcome)
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(_chunks(pieces, outcome, meta, include_usage, locale),
                                   ping=settings.chat_keepalive_s, headers={"X-Accel-Buffering": "no"})
    try:
        text = "".join([piece async for piece in pieces])
    except ChatError as exc:
        return _error_response(exc, locale)
    return {
        **meta, "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": outcome.finish_reason, "logprobs": None}],
        "usage": _usage(outcome),
    }


def _usage(outcome: Outcome) -> dict[str, int]:
    return {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}


def _chunk(meta: dict[str, Any], delta: dict[str, Any], finish: str | None, **extra: Any) -> ServerSentEvent:
    body = {**meta, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return ServerSentEvent(data=json.dumps(body, ensure_ascii=False))


async def _chunks(
    pieces: AsyncIterator[str], outcome: Outcome, meta: dict[str, Any], include_usage: bool, locale: str,
) -> AsyncIterator[ServerSentEvent]:
    yield _chunk(meta, {"role": "assistant", "content": ""}, None)
    try:
        async for piece in pieces:
            yield _chunk(meta, {"content": piece}, None)
    except ChatError as exc:
        # After the 200 is sent an error can only travel as data; the openai client raises on it.
        yield ServerSentEvent(data=json.dumps(openai_error(exc.message(locale), exc.code, exc.status_code),
                                              ensure_ascii=False))
        return
    yield _chunk(meta, {}, outcome.finish_reason)
    if include_usage:
        body = {**meta, "object": "chat.completion.chunk", "choices": [], "usage": _usage(outcome)}
        yield ServerSentEvent(data=json.dumps(body))
    yield ServerSentEvent(data="[DONE]")
