"""Chat over the API: send a message and stream the answer as SSE."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from backend.api.deps import CurrentUser, DbDep
from backend.chat import service
from backend.chat.errors import ChatError
from backend.chat.http import ChatDep, api_error, locale_of, owned_conversation
from backend.chat.schemas import MessageCreate
from backend.chat.sse import event_stream
from backend.db import messages as messages_repo
from backend.schemas.common import error_responses
from backend.schemas.conversations import MessagePublic

router = APIRouter(tags=["chat"])

_STREAM_DOC = {
    200: {
        "description": "text/event-stream: `token` {text}, then `done` {message_id, finish_reason, "
        "generated_tokens, time_to_first_token_ms} or `error` {code, message}. With stream=false: the "
        "finished assistant message as JSON.",
        "content": {"text/event-stream": {}},
    },
    **error_responses(401, 404, 409, 422, 429),
}


@router.post("/conversations/{conversation_id}/messages", responses=_STREAM_DOC)
async def post_message(
    conversation_id: str, body: MessageCreate, request: Request, user: CurrentUser, db: DbDep, chat: ChatDep,
    stream: bool = Query(default=True, description="false: wait and return the answer as JSON"),
) -> Any:
    conversation = await owned_conversation(db, user, conversation_id)
    sent = await _send(chat, db, user, conversation, body)
    return await answer_response(request, chat, db, user, sent, stream)


async def _send(chat: service.ChatServices, db: DbDep, user: dict[str, Any], conversation: dict[str, Any],
                body: MessageCreate) -> service.Sent:
    try:
        return await service.send_message(
            chat, db, user_id=user["_id"], conversation=conversation, content=body.content,
            image_ids=body.image_ids, params=body.parameters,
        )
    except ChatError as exc:
        raise api_error(exc) from exc


async def answer_response(
    request: Request, chat: service.ChatServices, db: DbDep, user: dict[str, Any], sent: service.Sent, stream: bool,
) -> EventSourceResponse | MessagePublic:
    if stream:
        return event_stream(sent.generation.listen(), locale=locale_of(request),
                            keepalive_s=chat.settings.chat_keepalive_s)
    await chat.registry.wait(sent.generation.message_id)
    message = await messages_repo.get_message(db=db, user_id=user["_id"], message_id=sent.assistant_message["_id"])
    assert message is not None
    return MessagePublic.from_doc(message)


async def first_message_response(
    request: Request, db: DbDep, user: dict[str, Any], conversation: dict[str, Any], body: MessageCreate,
) -> Any:
    """For POST /conversations with a first message: the answer's stream, the new id in a header."""
    chat = request.app.state.chat
    sent = await _send(chat, db, user, conversation, body)
    response = event_stream(sent.generation.listen(), locale=locale_of(request),
                            keepalive_s=chat.settings.chat_keepalive_s)
    response.headers["X-Conversation-Id"] = str(conversation["_id"])
    return response
