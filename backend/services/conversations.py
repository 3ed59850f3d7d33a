"""Conversation use cases besides chatting: list and search, rename, read the messages, export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from bson import ObjectId

from backend.chat.export import conversation_markdown, download_headers
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.core.text import search_text
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.cursor import InvalidCursor, decode_cursor, encode_cursor
from backend.db.models import ConversationDoc, MessageDoc
from backend.services.chat import owned_conversation

EXPORT_PAGE = 500


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _cursor(value: str | None) -> tuple[dt.datetime, ObjectId] | None:
    try:
        return None if value is None else decode_cursor(value)
    except InvalidCursor:
        raise AppError("invalid_cursor") from None


async def list_conversations(
    db: Db, *, user_id: ObjectId, limit: int, cursor: str | None = None, query: str | None = None,
) -> Page[ConversationDoc]:
    """Newest first; with `query`, only those whose title or messages contain it."""
    docs = await conversations_repo.list_conversations(
        db=db, user_id=user_id, limit=limit + 1, before=_cursor(cursor),
        containing=search_text(query))
    page = docs[:limit]
    more = len(docs) > limit
    return Page(page, encode_cursor(page[-1]["updated_at"], page[-1]["_id"]) if more else None)


async def rename(db: Db, *, user_id: ObjectId, conversation_id: str, title: str, max_chars: int) -> ConversationDoc:
    if len(title) > max_chars:
        raise AppError("validation_error")
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    updated = await conversations_repo.update_conversation(
        db=db, user_id=user_id, conversation_id=conversation["_id"], changes={"title": title})
    if updated is None:
        raise AppError("conversation_not_found")
    return updated


async def list_messages(
    db: Db, *, user_id: ObjectId, conversation_id: str, limit: int, cursor: str | None = None,
) -> Page[MessageDoc]:
    """Oldest first; the cursor continues after the last message of the previous page."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    docs = await messages_repo.list_messages(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                             limit=limit + 1, after=_cursor(cursor))
    page = docs[:limit]
    more = len(docs) > limit
    return Page(page, encode_cursor(page[-1]["created_at"], page[-1]["_id"]) if more else None)


async def recent_messages(db: Db, *, user_id: ObjectId, conversation: ConversationDoc, limit: int) -> list[MessageDoc]:
    return await messages_repo.latest_messages(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                               limit=limit)


async def export_markdown(
    db: Db, *, user_id: ObjectId, conversation_id: str, locale: str,
) -> tuple[str, dict[str, str]]:
    """The whole conversation as Markdown, and the download headers named after its title."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    docs: list[MessageDoc] = []
    while True:
        after = (docs[-1]["created_at"], docs[-1]["_id"]) if docs else None
        page = await messages_repo.list_messages(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                                 limit=EXPORT_PAGE, after=after)
        docs += page
        if len(page) < EXPORT_PAGE:
            break
    text = conversation_markdown(conversation, docs, locale, utcnow())
    return text, download_headers(conversation["title"])
