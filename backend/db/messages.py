"""Repository: messages of a conversation, oldest first. Scoped by `user_id` as well as the conversation.

Fields: conversation_id, user_id, role (user/assistant/system), content, status
(complete/streaming/stopped/error), image_ids, created_at, updated_at, plus whatever the chat
engine adds through `extra` / `update_message` (parameters, token counts, timings, feedback, error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from bson import ObjectId
from pymongo import ReturnDocument

from backend.core.clock import utcnow
from backend.db.client import Db

Role = Literal["user", "assistant", "system"]
Status = Literal["complete", "streaming", "stopped", "error"]
_OLDEST_FIRST = [("created_at", 1), ("_id", 1)]


async def create_message(
    *,
    db: Db,
    conversation_id: ObjectId,
    user_id: ObjectId,
    role: Role,
    content: str,
    status: Status = "complete",
    image_ids: Sequence[ObjectId] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = utcnow()
    doc: dict[str, Any] = {
        **(extra or {}),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "role": role,
        "content": content,
        "status": status,
        "image_ids": list(image_ids),
        "created_at": now,
        "updated_at": now,
    }
    doc["_id"] = (await db.messages.insert_one(doc)).inserted_id
    return doc


async def get_message(*, db: Db, user_id: ObjectId, message_id: ObjectId) -> dict[str, Any] | None:
    return await db.messages.find_one({"_id": message_id, "user_id": user_id})


async def update_message(
    *, db: Db, user_id: ObjectId, message_id: ObjectId, changes: dict[str, Any]
) -> dict[str, Any] | None:
    protected = {"_id", "conversation_id", "user_id", "created_at"}
    fields = {k: v for k, v in changes.items() if k not in protected}
    return await db.messages.find_one_and_update(
        {"_id": message_id, "user_id": user_id},
        {"$set": {**fields, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )


async def list_messages(
    *,
    db: Db,
    user_id: ObjectId,
    conversation_id: ObjectId,
    limit: int,
    after: tuple[dt.datetime, ObjectId] | None = None,
) -> list[dict[str, Any]]:
    """Oldest first; `after` is the (created_at, _id) of the last item of the previous page."""
    query: dict[str, Any] = {"conversation_id": conversation_id, "user_id": user_id}
    if after is not None:
        at, last_id = after
        query["$or"] = [{"created_at": {"$gt": at}}, {"created_at": at, "_id": {"$gt": last_id}}]
    return await db.messages.find(query).sort(_OLDEST_FIRST).limit(limit).to_list(length=limit)


async def count_messages(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> int:
    return await db.messages.count_documents({"conversation_id": conversation_id, "user_id": user_id})
