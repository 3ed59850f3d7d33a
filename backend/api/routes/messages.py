"""One message: re-attach to its stream, stop, regenerate, feedback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from backend.api.deps import CurrentUser, DbDep
from backend.api.routes.chat import _STREAM_DOC, answer_response
from backend.chat import service
from backend.chat.errors import ChatError
from backend.chat.http import ChatDep, api_error, locale_of, object_id
from backend.chat.schemas import FeedbackCreate, RegenerateRequest
from backend.chat.sse import event_stream
from backend.core.errors import ApiError
from backend.db import messages as messages_repo
from backend.schemas.common import error_responses
from backend.schemas.conversations import MessagePublic

router = APIRouter(prefix="/messages", tags=["chat"])


@router.get("/{message_id}", responses=error_responses(401, 404))
async def get_message(message_id: str, user: CurrentUser, db: DbDep) -> MessagePublic:
    message = await messages_repo.get_message(
        db=db, user_id=user["_id"], message_id=object_id(message_id, "message_not_found")
    )
    if message is None:
        raise ApiError(404, "message_not_found")
    return MessagePublic.from_doc(message)


@router.get("/{message_id}/events", responses=_STREAM_DOC)
async def message_events(
    message_id: str, request: Request, user: CurrentUser, db: DbDep, chat: ChatDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(description="same as Last-Event-ID, for clients that cannot set it")] = None,
) -> Any:
    """Re-attach to an answer: the rest of a running one, or the saved one, without gaps or repeats."""
    try:
        events = await service.events_for(
            chat, db, user_id=user["_id"], message_id=object_id(message_id, "message_not_found"),
            last_event_id=last_event_id or after,
        )
    except ChatError as exc:
        raise api_error(exc) from exc
    return event_stream(events, locale=locale_of(request), keepalive_s=chat.settings.chat_keepalive_s)


@router.post("/{message_id}/stop", responses=error_responses(401, 404, 409))
async def stop_message(message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep) -> MessagePublic:
    try:
        message = await service.stop(chat, db, user_id=user["_id"], message_id=object_id(message_id, "message_not_found"))
    except ChatError as exc:
        raise api_error(exc) from exc
    return MessagePublic.from_doc(message)


@router.post("/{message_id}/regenerate", responses=_STREAM_DOC)
async def regenerate_message(
    message_id: str, request: Request, user: CurrentUser, db: DbDep, chat: ChatDep,
    body: RegenerateRequest | None = None, stream: bool = Query(default=True),
) -> Any:
    try:
        sent = await service.regenerate(
            chat, db, user_id=user["_id"], message_id=object_id(message_id, "message_not_found"),
            params=(body or RegenerateRequest()).parameters,
        )
    except ChatError as exc:
        raise api_error(exc) from exc
    return await answer_response(request, chat, db, user, sent, stream)


@router.post("/{message_id}/feedback", responses=error_responses(401, 404, 422))
async def message_feedback(message_id: str, body: FeedbackCreate, user: CurrentUser, db: DbDep) -> MessagePublic:
    try:
        message = await service.give_feedback(
            db, user_id=user["_id"], message_id=object_id(message_id, "message_not_found"),
            rating=body.rating, comment=body.comment,
        )
    except ChatError as exc:
        raise api_error(exc) from exc
    return MessagePublic.from_doc(message)
