"""Repository: conversations. Every query is scoped to its owner (`user_id`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, cast

from bson import ObjectId
from pymongo import ReturnDocument

from backend.core.clock import utcnow
from backend.db.client import Db
from backend.db.models import ConversationDoc

_NEWEST_FIRST = [("updated_at", -1), ("_id", -1)]
# A search reads at most this many of the user's newest matching messages to find their conversations.
SEARCH_MESSAGE_HITS = 2000


async def create_conversation(
    *, db: Db, user_id: ObjectId, title: str, model: dict[str, Any] | None = None
) -> ConversationDoc:
    now = utcnow()
    doc: dict[str, Any] = {
        "user_id": user_id,
        "title": title,
        "created_at": now,
        "updated_at": now,
        "model": model,
        "message_count": 0,
    }
    doc["_id"] = (await db.conversations.insert_one(doc)).inserted_id
    return cast(ConversationDoc, doc)


async def get_conversation(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> ConversationDoc | None:
    return cast(ConversationDoc | None, await db.conversations.find_one({"_id": conversation_id, "user_id": user_id}))


async def list_conversations(
    *, db: Db, user_id: ObjectId, limit: int, before: tuple[dt.datetime, ObjectId] | None = None,
    containing: str | None = None,
) -> list[ConversationDoc]:
    """Newest first; `before` is the (updated_at, _id) of the last item of the previous page.

    With `containing`, only conversations whose title or one of whose messages contains that text
    (ignoring case; matched literally, never as a pattern).
    """
    clauses: list[dict[str, Any]] = [{"user_id": user_id}]
    if before is not None:
        at, last_id = before
        clauses.append({"$or": [{"updated_at": {"$lt": at}}, {"updated_at": at, "_id": {"$lt": last_id}}]})
    if containing:
        clauses.append(await _containing(db, user_id, containing))
    query = clauses[0] if len(clauses) == 1 else {"$and": clauses}
    docs = await db.conversations.find(query).sort(_NEWEST_FIRST).limit(limit).to_list(length=limit)
    return cast(list[ConversationDoc], docs)


async def _containing(db: Db, user_id: ObjectId, text: str) -> dict[str, Any]:
    pattern = {"$regex": re.escape(text), "$options": "i"}
    hits = db.messages.find({"user_id": user_id, "content": pattern}, {"conversation_id": 1})
    hits = hits.sort("_id", -1).limit(SEARCH_MESSAGE_HITS)
    ids = list({doc["conversation_id"] async for doc in hits})
    return {"$or": [{"title": pattern}, {"_id": {"$in": ids}}]}


async def update_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, changes: dict[str, Any]
) -> ConversationDoc | None:
    """Rename (the page and the API need the updated document back)."""
    allowed = {k: v for k, v in changes.items() if k in {"title", "model"}}
    return await db.conversations.find_one_and_update(  # type: ignore[return-value]  # TypedDict of the stored dict
        {"_id": conversation_id, "user_id": user_id},
        {"$set": {**allowed, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )


async def claim(*, db: Db, user_id: ObjectId, conversation_id: ObjectId, message_id: ObjectId) -> bool:
    """Reserve the conversation for one new answer (atomic across workers); False if one is running."""
    result = await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id, "active_message_id": None},
        {"$set": {"active_message_id": message_id}},
    )
    return result.modified_count == 1


async def release(*, db: Db, conversation_id: ObjectId, message_id: ObjectId) -> None:
    await db.conversations.update_one(
        {"_id": conversation_id, "active_message_id": message_id}, {"$set": {"active_message_id": None}}
    )


async def touch_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, added_messages: int = 0, title: str | None = None
) -> None:
    """Move a conversation to the top of the list (new message) and count its messages; with
    `title`, rename it in the same write (a new conversation titled from its first message)."""
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if title is not None:
        changes["title"] = title
    await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id}, {"$set": changes, "$inc": {"message_count": added_messages}},
    )


async def delete_conversation(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> bool:
    """Delete a conversation with its messages, images and feedback; False if not the owner's."""
    result = await db.conversations.delete_one({"_id": conversation_id, "user_id": user_id})
    if result.deleted_count != 1:
        return False
    scope = {"conversation_id": conversation_id, "user_id": user_id}
    await db.messages.delete_many(scope)
    await db.images.delete_many(scope)
    await db.feedback.delete_many(scope)
    return True


async def delete_user_conversations(*, db: Db, user_id: ObjectId) -> None:
    for name in ("conversations", "messages", "images", "feedback"):
        await db[name].delete_many({"user_id": user_id})
