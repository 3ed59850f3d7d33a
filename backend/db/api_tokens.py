"""Repository: personal API tokens (`kovr_...`), stored only as sha256 with a display prefix."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from backend.core.clock import utcnow
from backend.db.auth_cache import CACHE
from backend.db.client import Db


async def create_api_token(
    *, db: Db, user_id: ObjectId, name: str, prefix: str, token_hash: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "user_id": user_id,
        "name": name,
        "prefix": prefix,
        "token_hash": token_hash,
        "created_at": utcnow(),
        "last_used_at": None,
        "revoked": False,
    }
    doc["_id"] = (await db.api_tokens.insert_one(doc)).inserted_id
    return doc


async def list_api_tokens(*, db: Db, user_id: ObjectId) -> list[dict[str, Any]]:
    cursor = db.api_tokens.find({"user_id": user_id, "revoked": False}).sort(
        [("created_at", -1), ("_id", -1)]
    )
    return await cursor.to_list(length=1000)


async def find_active_token(*, db: Db, token_hash: str) -> dict[str, Any] | None:
    return await db.api_tokens.find_one({"token_hash": token_hash, "revoked": False})


async def touch_api_token(*, db: Db, token_id: ObjectId) -> None:
    await db.api_tokens.update_one({"_id": token_id}, {"$set": {"last_used_at": utcnow()}})


async def revoke_api_token(*, db: Db, user_id: ObjectId, token_id: ObjectId) -> bool:
    result = await db.api_tokens.update_one(
        {"_id": token_id, "user_id": user_id, "revoked": False},
        {"$set": {"revoked": True, "revoked_at": utcnow()}},
    )
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it
    return result.modified_count == 1


async def delete_user_tokens(*, db: Db, user_id: ObjectId) -> None:
    await db.api_tokens.delete_many({"user_id": user_id})
