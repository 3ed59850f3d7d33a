"""Chat over the API: send a message and stream the answer as SSE (or wait for it as JSON)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from backend.chat.schemas import MessageCreate
from backend.http.deps import ChatDep, CurrentUser, DbDep, LocaleDep
from backend.http.sse import event_stream
from backend.schemas.common import error_responses
from backend.schemas.conversations import MessagePublic
from backend.services import chat as chat_service

router = APIRouter(tags=["chat"])

STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "text/event-stream: `token` {text}, then `done` {message_id, finish_reason, "
        "generated_tokens, time_to_first_token_ms} or `error` {code, message}. With stream=false: the "
        "finished assistant message as JSON.",
        "content": {"text/event-stream": {}},
    },
    **error_responses(401, 404, 409, 422, 429),
}


@router.post("/conversations/{conversation_id}/messages", responses=STREAM_DOC)
async def post_message(
    conversation_id: str, body: MessageCreate, user: CurrentUser, db: DbDep, chat: ChatDep, locale: LocaleDep,
    stream: bool = Query(default=True, description="false: wait and return the answer as JSON"),
) -> Any:
    conversation = await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id)
    sent = await chat_service.send_message(chat, db, user_id=user["_id"], conversation=conversation,
                                           content=body.content, image_ids=body.image_ids, params=body.parameters)
    return await answer_response(chat, db, sent, stream, locale)


async def answer_response(
    chat: chat_service.ChatServices, db: DbDep, sent: chat_service.Sent, stream: bool, locale: str,
) -> Any:
    if stream:
        return event_stream(chat_service.listen(sent), locale=locale, keepalive_s=chat.settings.chat_keepalive_s)
    return JSONResponse(MessagePublic.from_doc(await chat_service.finished_answer(db, sent)).model_dump(mode="json"))
