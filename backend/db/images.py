"""Repository: uploaded images, owner-scoped; `conversation_id` is set once sent in a conversation."""

from __future__ import annotations

import datetime as dt
from typing import cast

from bson import ObjectId

from backend.db.client import Db
from backend.db.models import ImageDoc


async def insert_image(*, db: Db, doc: ImageDoc) -> None:
    await db.images.insert_one(dict(doc))


async def get_image(*, db: Db, user_id: ObjectId, image_id: ObjectId) -> ImageDoc | None:
    return cast(ImageDoc | None, await db.images.find_one({"_id": image_id, "user_id": user_id}))


async def find_images(*, db: Db, user_id: ObjectId, image_ids: list[ObjectId]) -> list[ImageDoc]:
    docs = await db.images.find({"_id": {"$in": image_ids}, "user_id": user_id}).to_list(length=len(image_ids))
    return cast(list[ImageDoc], docs)


async def attach_images(*, db: Db, user_id: ObjectId, image_ids: list[ObjectId], conversation_id: ObjectId) -> None:
    """Sent in a conversation: kept (no longer expires) until the conversation or account goes."""
    if image_ids:
        await db.images.update_many(
            {"_id": {"$in": image_ids}, "user_id": user_id},
            {"$set": {"conversation_id": conversation_id}, "$unset": {"expires_at": ""}},
        )


async def stored_bytes(*, db: Db, user_id: ObjectId) -> int:
    """What a user's images take, for the storage quota."""
    rows = await (await db.images.aggregate([
        {"$match": {"user_id": user_id}}, {"$group": {"_id": None, "bytes": {"$sum": "$size"}}},
    ])).to_list(length=1)
    return int(rows[0]["bytes"]) if rows else 0


async def delete_expired(*, db: Db, user_id: ObjectId, now: dt.datetime) -> int:
    """Unattached images past their retention (the TTL index does the same, but only once a minute)."""
    result = await db.images.delete_many({"user_id": user_id, "expires_at": {"$lte": now}})
    return result.deleted_count
