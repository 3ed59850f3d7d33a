"""One message: read it, re-attach to its stream, stop, regenerate, feedback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

from backend.api.routes.chat import STREAM_DOC, answer_response
from backend.chat.schemas import FeedbackCreate, RegenerateRequest
from backend.http.deps import ChatDep, CurrentUser, DbDep, LocaleDep
from backend.http.sse import event_stream
from backend.schemas.common import error_responses
from backend.schemas.conversations import MessagePublic
from backend.services import chat as chat_service

router = APIRouter(prefix="/messages", tags=["chat"])
EventId = Annotated[str | None, Header(max_length=40)]
After = Annotated[str | None, Query(max_length=40, pattern=r"^[0-9]{1,19}-[0-9]{1,19}$",
                                    description="same as Last-Event-ID, for clients that cannot set it")]


@router.get("/{message_id}", responses=error_responses(401, 404))
async def get_message(message_id: str, user: CurrentUser, db: DbDep) -> MessagePublic:
    return MessagePublic.from_doc(await chat_service.owned_message(db, user_id=user["_id"], message_id=message_id))


@router.get("/{message_id}/events", responses=STREAM_DOC)
async def message_events(
    message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep, locale: LocaleDep,
    last_event_id: EventId = None, after: After = None,
) -> Any:
    """Re-attach to an answer: the rest of a running one, or the saved one, without gaps or repeats."""
    events = await chat_service.events(chat, db, user_id=user["_id"], message_id=message_id,
                                       last_event_id=last_event_id or after)
    return event_stream(events, locale=locale, keepalive_s=chat.settings.chat_keepalive_s)


@router.post("/{message_id}/stop", responses=error_responses(401, 404, 409))
async def stop_message(message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep) -> MessagePublic:
    return MessagePublic.from_doc(await chat_service.stop(chat, db, user_id=user["_id"], message_id=message_id))


@router.post("/{message_id}/regenerate", responses=STREAM_DOC)
async def regenerate_message(
    message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep, locale: LocaleDep,
    body: RegenerateRequest | None = None, stream: bool = Query(default=True),
) -> Any:
    sent = await chat_service.regenerate(chat, db, user_id=user["_id"], message_id=message_id,
                                         params=(body or RegenerateRequest()).parameters)
    return await answer_response(chat, db, sent, stream, locale)


@router.post("/{message_id}/feedback", responses=error_responses(401, 404, 422))
async def message_feedback(message_id: str, body: FeedbackCreate, user: CurrentUser, db: DbDep) -> MessagePublic:
    message = await chat_service.give_feedback(db, user_id=user["_id"], message_id=message_id,
                                               rating=body.rating, comment=body.comment)
    return MessagePublic.from_doc(message)
