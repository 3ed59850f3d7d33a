"""Repository: conversations. Every query is scoped to its owner (`user_id`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from backend.core.clock import utcnow
from backend.db.client import Db

_NEWEST_FIRST = [("updated_at", -1), ("_id", -1)]


async def create_conversation(
    *, db: Db, user_id: ObjectId, title: str, model: dict[str, Any] | None = None
) -> dict[str, Any]:
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
    return doc


async def get_conversation(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> dict[str, Any] | None:
    return await db.conversations.find_one({"_id": conversation_id, "user_id": user_id})


async def list_conversations(
    *, db: Db, user_id: ObjectId, limit: int, before: tuple[dt.datetime, ObjectId] | None = None
) -> list[dict[str, Any]]:
    """Newest first; `before` is the (updated_at, _id) of the last item of the previous page."""
    query: dict[str, Any] = {"user_id": user_id}
    if before is not None:
        at, last_id = before
        query["$or"] = [{"updated_at": {"$lt": at}}, {"updated_at": at, "_id": {"$lt": last_id}}]
    return await db.conversations.find(query).sort(_NEWEST_FIRST).limit(limit).to_list(length=limit)


async def update_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, changes: dict[str, Any]
) -> dict[str, Any] | None:
    allowed = {k: v for k, v in changes.items() if k in {"title", "model"}}
    return await db.conversations.find_one_and_update(
        {"_id": conversation_id, "user_id": user_id},
        {"$set": {**allowed, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )


async def touch_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, added_messages: int = 0
) -> None:
    """Move a conversation to the top of the list (new message) and count its messages."""
    await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id},
        {"$set": {"updated_at": utcnow()}, "$inc": {"message_count": added_messages}},
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
