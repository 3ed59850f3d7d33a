"""/api/v1/conversations: create (optionally with a first message whose answer streams back), list
and search, read, rename, delete, export, and the messages of one (oldest first)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from backend.api.routes.chat import STREAM_DOC
from backend.chat.schemas import BranchRequest, ChatParameters
from backend.core.text import SEARCH_MAX_CHARS
from backend.http.deps import ChatDep, CurrentUser, DbDep, LocaleDep, SettingsDep
from backend.http.sse import event_stream
from backend.schemas.common import error_responses
from backend.schemas.conversations import (
    ConversationCreate,
    ConversationPage,
    ConversationPublic,
    ConversationUpdate,
    MessagePage,
    MessagePublic,
)
from backend.services import chat as chat_service
from backend.services import conversations as conversations_service

router = APIRouter(prefix="/conversations", tags=["conversations"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_=-]+$",
                                      description="next_cursor of the previous page")]
Search = Annotated[str | None, Query(max_length=SEARCH_MAX_CHARS,
                                     description="only conversations whose title or messages contain this text")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses={**error_responses(401, 404, 422, 429), 200: STREAM_DOC[200]},
)
async def create_conversation(
    body: ConversationCreate, user: CurrentUser, db: DbDep, chat: ChatDep, settings: SettingsDep, locale: LocaleDep,
) -> Any:
    """Create a conversation; with `message`, its answer streams back (200, header X-Conversation-Id).
    A refused first message (empty, rate limit, …) leaves no conversation behind."""
    first = body.message
    conversation, sent = await chat_service.start_conversation(
        chat, db, user_id=user["_id"], title=body.title, content=None if first is None else first.content,
        image_ids=[] if first is None else first.image_ids,
        params=ChatParameters() if first is None else first.parameters)
    if sent is None:
        return ConversationPublic.from_doc(conversation)
    response = event_stream(chat_service.listen(sent), locale=locale, keepalive_s=settings.chat_keepalive_s)
    response.headers["X-Conversation-Id"] = str(conversation["_id"])
    return response


@router.get("", response_model=ConversationPage, responses=error_responses(401, 422))
async def list_conversations(
    user: CurrentUser, db: DbDep, limit: Limit = 20, cursor: Cursor = None, q: Search = None
) -> ConversationPage:
    """Newest first; pass `next_cursor` back as `cursor` for the next page (null on the last)."""
    page = await conversations_service.list_conversations(db, user_id=user["_id"], limit=limit, cursor=cursor,
                                                          query=q)
    return ConversationPage(items=[ConversationPublic.from_doc(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{conversation_id}", response_model=ConversationPublic, responses=error_responses(401, 404))
async def read_conversation(conversation_id: str, user: CurrentUser, db: DbDep) -> ConversationPublic:
    return ConversationPublic.from_doc(
        await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id))


@router.patch("/{conversation_id}", response_model=ConversationPublic, responses=error_responses(401, 404, 422))
async def rename_conversation(
    conversation_id: str, body: ConversationUpdate, user: CurrentUser, db: DbDep, settings: SettingsDep
) -> ConversationPublic:
    return ConversationPublic.from_doc(await conversations_service.rename(
        db, user_id=user["_id"], conversation_id=conversation_id, title=body.title,
        max_chars=settings.max_title_chars))


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
async def delete_conversation(conversation_id: str, user: CurrentUser, db: DbDep, chat: ChatDep) -> Response:
    """Deletes its messages, images and feedback too; a running answer is stopped first."""
    await chat_service.delete_conversation(chat, db, user_id=user["_id"], conversation_id=conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{conversation_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "the whole conversation, oldest first"},
               **error_responses(401, 404)},
)
async def export_conversation(conversation_id: str, user: CurrentUser, db: DbDep, locale: LocaleDep) -> Response:
    """Download the conversation's shown branch as Markdown (title, times in UTC; images by count)."""
    text, headers = await conversations_service.export_markdown(db, user_id=user["_id"],
                                                                conversation_id=conversation_id, locale=locale)
    return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)


@router.get("/{conversation_id}/messages", response_model=MessagePage, responses=error_responses(401, 404, 422))
async def list_messages(
    conversation_id: str, user: CurrentUser, db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: Cursor = None,
) -> MessagePage:
    """The shown branch (root → current_leaf_id), oldest first, each message with `parent_id` and
    its `siblings`; pass `next_cursor` back as `cursor` for the following messages."""
    page = await conversations_service.list_messages(db, user_id=user["_id"], conversation_id=conversation_id,
                                                     limit=limit, cursor=cursor)
    return MessagePage(items=[MessagePublic.from_doc(s.doc, s.siblings) for s in page.items],
                       next_cursor=page.next_cursor)


@router.post("/{conversation_id}/branch", response_model=ConversationPublic,
             responses=error_responses(401, 404, 422))
async def switch_branch(conversation_id: str, body: BranchRequest, user: CurrentUser, db: DbDep) -> ConversationPublic:
    """Show the branch through `message_id`: `current_leaf_id` becomes the newest leaf under it
    (following the newest child). The next message continues that branch."""
    return ConversationPublic.from_doc(await conversations_service.show_branch(
        db, user_id=user["_id"], message_id=body.message_id, conversation_id=conversation_id))
