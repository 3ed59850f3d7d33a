"""One message: read it, re-attach to its stream, stop, regenerate, edit, continue, delete, feedback.

Regenerate and edit add a new version of a message (a sibling: a branch of the conversation tree)
and show it; continue appends to an answer that ended on `length`. Their answers stream like a
sent message's, and re-attach through `GET /messages/{id}/events` like any answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

from backend.api.routes.chat import STREAM_DOC, answer_response
from backend.chat.schemas import ContinueRequest, EditRequest, FeedbackCreate, RegenerateRequest
from backend.http.deps import ChatDep, CurrentUser, DbDep, LocaleDep
from backend.http.sse import event_stream
from backend.schemas.common import error_responses
from backend.schemas.conversations import ConversationPublic, MessagePublic
from backend.services import chat as chat_service
from backend.services import conversations as conversations_service

router = APIRouter(prefix="/messages", tags=["chat"])
EventId = Annotated[str | None, Header(max_length=40)]
After = Annotated[str | None, Query(max_length=40, pattern=r"^[0-9]{1,19}-[0-9]{1,19}$",
                                    description="same as Last-Event-ID, for clients that cannot set it")]


@router.get("/{message_id}", responses=error_responses(401, 404))
async def get_message(message_id: str, user: CurrentUser, db: DbDep) -> MessagePublic:
    shown = await conversations_service.message_with_siblings(db, user_id=user["_id"], message_id=message_id)
    return MessagePublic.from_doc(shown.doc, shown.siblings)


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
    """A new answer to the same question: a sibling of this one, shown from now on (the old one stays)."""
    sent = await chat_service.regenerate(chat, db, user_id=user["_id"], message_id=message_id,
                                         params=(body or RegenerateRequest()).parameters)
    return await answer_response(chat, db, sent, stream, locale)


@router.post("/{message_id}/edit", responses=STREAM_DOC)
async def edit_message(
    message_id: str, body: EditRequest, user: CurrentUser, db: DbDep, chat: ChatDep, locale: LocaleDep,
    stream: bool = Query(default=True),
) -> Any:
    """Edit and resend a user message: a new sibling of it (a new branch, shown from now on) whose
    answer streams back; the old branch is kept. Header X-User-Message-Id: the new user message."""
    sent = await chat_service.edit_message(chat, db, user_id=user["_id"], message_id=message_id,
                                           content=body.content, image_ids=body.image_ids, params=body.parameters)
    response = await answer_response(chat, db, sent, stream, locale)
    if sent.user_message is not None:
        response.headers["X-User-Message-Id"] = str(sent.user_message["_id"])
    return response


@router.post("/{message_id}/continue", responses=STREAM_DOC)
async def continue_message(
    message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep, locale: LocaleDep,
    body: ContinueRequest | None = None, stream: bool = Query(default=True),
) -> Any:
    """Go on from an answer that ended on `length` (the last message of its branch), in the same
    message. The stream carries only the new text; its event ids go on from the saved text's length."""
    sent = await chat_service.continue_answer(chat, db, user_id=user["_id"], message_id=message_id,
                                              params=(body or ContinueRequest()).parameters)
    return await answer_response(chat, db, sent, stream, locale)


@router.delete("/{message_id}", response_model=ConversationPublic, responses=error_responses(401, 404, 409))
async def delete_message(message_id: str, user: CurrentUser, db: DbDep, chat: ChatDep) -> ConversationPublic:
    """Delete a message and every message below it (409 while an answer among them streams).
    Returns the conversation, whose shown branch moved to the newest remaining sibling or the parent."""
    return ConversationPublic.from_doc(
        await chat_service.delete_message(chat, db, user_id=user["_id"], message_id=message_id))


@router.post("/{message_id}/feedback", responses=error_responses(401, 404, 422))
async def message_feedback(message_id: str, body: FeedbackCreate, user: CurrentUser, db: DbDep) -> MessagePublic:
    message = await chat_service.give_feedback(db, user_id=user["_id"], message_id=message_id,
                                               rating=body.rating, comment=body.comment)
    return MessagePublic.from_doc(message)
