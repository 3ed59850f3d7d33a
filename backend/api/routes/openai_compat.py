"""OpenAI-compatible API: POST /v1/chat/completions (stream and not), GET /v1/models.

Authenticated with `Authorization: Bearer <personal API token>` (a JWT works too), so the
`openai` client and the many tools built on it can talk to KoVR. Stateless: nothing is stored.
Images: `image_url` content parts with data: URIs only (a URL is never fetched).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from backend.chat.openai_schemas import ChatCompletionRequest, openai_error
from backend.chat.turn import TurnOutcome
from backend.core.errors import AppError
from backend.http.deps import ChatDep, CurrentAuth, DbDep, LocaleDep, SettingsDep
from backend.schemas.common import error_responses
from backend.services import completions, quota

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


def _error_response(exc: AppError, locale: str) -> JSONResponse:
    return JSONResponse(openai_error(exc.message(locale), exc.code, exc.status_code), status_code=exc.status_code,
                        headers=exc.response_headers())


@router.get("/models")
async def list_models(auth: CurrentAuth, chat: ChatDep) -> dict[str, Any]:
    info = chat.model.cached_info
    model_id = info.model_id if info else "kovr"
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "kovr"}]}


@router.post("/chat/completions", responses={
    200: {"description": "the completion (JSON), or with `stream: true` its chunks as text/event-stream",
          "content": {"application/json": {}, "text/event-stream": {}}},
    **error_responses(401, 422, 429),
})
async def chat_completions(
    body: ChatCompletionRequest, auth: CurrentAuth, chat: ChatDep, db: DbDep, settings: SettingsDep,
    locale: LocaleDep,
) -> Any:
    if auth.via == "cookie":  # programs only: a browser session would need CSRF protection here
        raise AppError("not_authenticated")
    try:
        turn = await completions.turn_request(body, settings)
        reservation = await quota.reserve(settings, db, user_id=auth.user["_id"], tokens=turn.max_new_tokens)
    except AppError as exc:
        return _error_response(exc, locale)
    outcome = TurnOutcome()
    pieces = completions.complete(chat, db, turn, outcome, reservation)
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(_chunks(pieces, outcome, meta, include_usage, locale),
                                   ping=settings.chat_keepalive_s, headers={"X-Accel-Buffering": "no"})
    try:
        text = "".join([piece async for piece in pieces])
    except AppError as exc:
        return _error_response(exc, locale)
    return {
        **meta, "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": _finish(outcome), "logprobs": None}],
        "usage": _usage(outcome),
    }


def _usage(outcome: TurnOutcome) -> dict[str, int]:
    prompt = outcome.prompt_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": outcome.generated_tokens,
            "total_tokens": prompt + outcome.generated_tokens}


def _finish(outcome: TurnOutcome) -> str:
    """OpenAI's finish reasons: only `length` and `stop` mean anything to its clients."""
    return "length" if outcome.finish_reason == "length" else "stop"


def _chunk(meta: dict[str, Any], delta: dict[str, Any], finish: str | None, **extra: Any) -> ServerSentEvent:
    body = {**meta, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return ServerSentEvent(data=json.dumps(body, ensure_ascii=False))


async def _chunks(
    pieces: AsyncIterator[str], outcome: TurnOutcome, meta: dict[str, Any], include_usage: bool, locale: str,
) -> AsyncIterator[ServerSentEvent]:
    yield _chunk(meta, {"role": "assistant", "content": ""}, None)
    try:
        async for piece in pieces:
            yield _chunk(meta, {"content": piece}, None)
    except AppError as exc:
        # After the 200 is sent an error can only travel as data; the openai client raises on it.
        yield ServerSentEvent(data=json.dumps(openai_error(exc.message(locale), exc.code, exc.status_code),
                                              ensure_ascii=False))
        return
    yield _chunk(meta, {}, _finish(outcome))
    if include_usage:
        body = {**meta, "object": "chat.completion.chunk", "choices": [], "usage": _usage(outcome)}
        yield ServerSentEvent(data=json.dumps(body))
    yield ServerSentEvent(data="[DONE]")
