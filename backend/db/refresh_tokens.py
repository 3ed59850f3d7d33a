"""Repository: refresh tokens, stored as sha256, grouped in families; a TTL index drops expired ones.

A family is one sign-in. Every use rotates the token (the old one is marked `used_at` and
`replaced_by`); presenting a used token again means it was copied, so the whole family is revoked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from backend.core.clock import utcnow
from backend.db.auth_cache import CACHE
from backend.db.client import Db


async def insert_refresh_token(
    *,
    db: Db,
    user_id: ObjectId,
    token_hash: str,
    family_id: str,
    expires_at: dt.datetime,
    client: str | None = None,
) -> ObjectId:
    doc = {
        "user_id": user_id,
        "token_hash": token_hash,
        "family_id": family_id,
        "created_at": utcnow(),
        "expires_at": expires_at,
        "used_at": None,
        "replaced_by": None,
        "revoked": False,
        "client": client,
    }
    inserted: ObjectId = (await db.refresh_tokens.insert_one(doc)).inserted_id
    return inserted


async def find_refresh_token(*, db: Db, token_hash: str) -> dict[str, Any] | None:
    return await db.refresh_tokens.find_one({"token_hash": token_hash})


async def claim_refresh_token(*, db: Db, token_hash: str, now: dt.datetime) -> dict[str, Any] | None:
    """Mark an unused, live token used, atomically: of two concurrent uses only one wins."""
    return await db.refresh_tokens.find_one_and_update(
        {"token_hash": token_hash, "used_at": None, "revoked": False, "expires_at": {"$gt": now}},
        {"$set": {"used_at": now}},
        return_document=ReturnDocument.AFTER,
    )


async def set_replaced_by(*, db: Db, token_id: ObjectId, successor_id: ObjectId) -> None:
    await db.refresh_tokens.update_one({"_id": token_id}, {"$set": {"replaced_by": successor_id}})


async def family_active(*, db: Db, family_id: str) -> bool:
    """A sign-in is live while any of its tokens is unrevoked (used ones included: the latest is).

    Filtered on `family_id` alone (index `family`; a family holds one token per rotation) and
    checked here: the embedded database plans an index only when it holds every filtered field."""
    tokens = db.refresh_tokens.find({"family_id": family_id}, {"revoked": 1})
    return any([not doc.get("revoked") async for doc in tokens])


async def revoke_family(*, db: Db, family_id: str) -> int:
    result = await db.refresh_tokens.update_many({"family_id": family_id}, {"$set": {"revoked": True}})
    CACHE.forget_family(family_id)  # after the write: this process's cached sign-ins see it
    return result.modified_count


async def revoke_user_tokens(*, db: Db, user_id: ObjectId, keep_family: str | None = None) -> int:
    query: dict[str, Any] = {"user_id": user_id, "revoked": False}
    if keep_family is not None:
        query["family_id"] = {"$ne": keep_family}
    result = await db.refresh_tokens.update_many(query, {"$set": {"revoked": True}})
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it
    return result.modified_count


async def delete_user_tokens(*, db: Db, user_id: ObjectId) -> None:
    await db.refresh_tokens.delete_many({"user_id": user_id})
