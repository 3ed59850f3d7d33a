"""/api/v1/conversations: CRUD, newest first with a cursor, and the messages of one (oldest first)."""

from __future__ import annotations

from typing import Annotated, Any

from bson import ObjectId
from fastapi import APIRouter, Query, Request, Response, status

from backend.api.deps import CurrentUser, DbDep, SettingsDep
from backend.chat.export import conversation_markdown, download_headers
from backend.core.clock import utcnow
from backend.core.errors import ApiError, request_locale
from backend.core.text import SEARCH_MAX_CHARS, search_text
from backend.db import conversations, messages
from backend.db.client import Db
from backend.db.cursor import InvalidCursor, decode_cursor, encode_cursor
from backend.db.ids import parse_id
from backend.schemas.common import error_responses
from backend.schemas.conversations import (
    ConversationCreate,
    ConversationPage,
    ConversationPublic,
    ConversationUpdate,
    MessagePage,
    MessagePublic,
)

router = APIRouter(prefix="/conversations", tags=["conversations"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
Search = Annotated[str | None, Query(max_length=SEARCH_MAX_CHARS,
                                     description="only conversations whose title or messages contain this text")]


def _cursor(value: str | None) -> Any:
    try:
        return None if value is None else decode_cursor(value)
    except InvalidCursor:
        raise ApiError(422, "invalid_cursor") from None


async def owned_conversation(db: Db, user: dict[str, Any], conversation_id: str) -> dict[str, Any]:
    """The user's conversation or 404 (unknown ids and other users' ids look the same)."""
    oid = parse_id(conversation_id)
    doc = (
        None
        if oid is None
        else await conversations.get_conversation(db=db, user_id=user["_id"], conversation_id=oid)
    )
    if doc is None:
        raise ApiError(404, "conversation_not_found")
    return doc


def _check_title(title: str, limit: int) -> None:
    if len(title) > limit:
        raise ApiError(422, "validation_error")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses={**error_responses(401, 422), 200: {"description": "SSE answer to the first message"}},
)
async def create_conversation(
    request: Request, body: ConversationCreate, user: CurrentUser, db: DbDep, settings: SettingsDep
) -> Any:
    """Create a conversation; with `message`, its answer streams back (200, header X-Conversation-Id)."""
    _check_title(body.title, settings.max_title_chars)
    doc = await conversations.create_conversation(db=db, user_id=user["_id"], title=body.title)
    if body.message is not None:
        from backend.api.routes.chat import first_message_response  # chat imports this module

        return await first_message_response(request, db, user, doc, body.message)
    return ConversationPublic.from_doc(doc)


@router.get("", response_model=ConversationPage, responses=error_responses(401, 422))
async def list_conversations(
    user: CurrentUser, db: DbDep, limit: Limit = 20, cursor: Cursor = None, q: Search = None
) -> ConversationPage:
    """Newest first; pass `next_cursor` back as `cursor` for the next page (null on the last)."""
    docs = await conversations.list_conversations(
        db=db, user_id=user["_id"], limit=limit + 1, before=_cursor(cursor), containing=search_text(q)
    )
    page, more = docs[:limit], len(docs) > limit
    next_cursor = encode_cursor(page[-1]["updated_at"], page[-1]["_id"]) if more else None
    return ConversationPage(items=[ConversationPublic.from_doc(d) for d in page], next_cursor=next_cursor)


@router.get("/{conversation_id}", response_model=ConversationPublic, responses=error_responses(401, 404))
async def read_conversation(conversation_id: str, user: CurrentUser, db: DbDep) -> ConversationPublic:
    return ConversationPublic.from_doc(await owned_conversation(db, user, conversation_id))


@router.patch(
    "/{conversation_id}", response_model=ConversationPublic, responses=error_responses(401, 404, 422)
)
async def rename_conversation(
    conversation_id: str, body: ConversationUpdate, user: CurrentUser, db: DbDep, settings: SettingsDep
) -> ConversationPublic:
    _check_title(body.title, settings.max_title_chars)
    doc = await owned_conversation(db, user, conversation_id)
    updated = await conversations.update_conversation(
        db=db, user_id=user["_id"], conversation_id=doc["_id"], changes={"title": body.title}
    )
    if updated is None:
        raise ApiError(404, "conversation_not_found")
    return ConversationPublic.from_doc(updated)


@router.delete(
    "/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404)
)
async def delete_conversation(conversation_id: str, user: CurrentUser, db: DbDep) -> Response:
    """Deletes its messages, images and feedback too."""
    oid: ObjectId | None = parse_id(conversation_id)
    if oid is None or not await conversations.delete_conversation(
        db=db, user_id=user["_id"], conversation_id=oid
    ):
        raise ApiError(404, "conversation_not_found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


EXPORT_PAGE = 500


@router.get(
    "/{conversation_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "the whole conversation, oldest first"},
               **error_responses(401, 404)},
)
async def export_conversation(conversation_id: str, request: Request, user: CurrentUser, db: DbDep) -> Response:
    """Download the conversation as Markdown (titles, times in UTC, every message; images by count)."""
    conv = await owned_conversation(db, user, conversation_id)
    docs: list[dict[str, Any]] = []
    while True:
        after = (docs[-1]["created_at"], docs[-1]["_id"]) if docs else None
        page = await messages.list_messages(db=db, user_id=user["_id"], conversation_id=conv["_id"],
                                            limit=EXPORT_PAGE, after=after)
        docs += page
        if len(page) < EXPORT_PAGE:
            break
    text = conversation_markdown(conv, docs, request_locale(request), utcnow())
    return Response(text, media_type="text/markdown; charset=utf-8", headers=download_headers(conv["title"]))


@router.get(
    "/{conversation_id}/messages", response_model=MessagePage, responses=error_responses(401, 404, 422)
)
async def list_messages(
    conversation_id: str,
    user: CurrentUser,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> MessagePage:
    """Oldest first; pass `next_cursor` back as `cursor` for the following messages."""
    conv = await owned_conversation(db, user, conversation_id)
    docs = await messages.list_messages(
        db=db, user_id=user["_id"], conversation_id=conv["_id"], limit=limit + 1, after=_cursor(cursor)
    )
    page, more = docs[:limit], len(docs) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["_id"]) if more else None
    return MessagePage(items=[MessagePublic.from_doc(d) for d in page], next_cursor=next_cursor)
