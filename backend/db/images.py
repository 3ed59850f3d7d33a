"""Repository: uploaded images, owner-scoped; `conversation_id` is set once sent in a conversation."""

from __future__ import annotations

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
    if image_ids:
        await db.images.update_many(
            {"_id": {"$in": image_ids}, "user_id": user_id}, {"$set": {"conversation_id": conversation_id}}
        )
