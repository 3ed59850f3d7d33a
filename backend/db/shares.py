"""Repository: share links (read-only snapshots of a conversation, public by their unguessable id).

Reads by id are not owner-scoped on purpose: knowing the id is what grants reading a share.
Every write and every listing is scoped by `user_id`.
"""

from __future__ import annotations

from typing import cast

from bson import ObjectId

from backend.db.client import Db
from backend.db.models import ShareDoc

_NEWEST_FIRST = [("created_at", -1), ("_id", -1)]


async def insert_share(*, db: Db, doc: ShareDoc) -> None:
    await db.shares.insert_one(dict(doc))


async def get_share(*, db: Db, share_id: str) -> ShareDoc | None:
    return cast(ShareDoc | None, await db.shares.find_one({"_id": share_id}))


async def list_shares(*, db: Db, user_id: ObjectId, limit: int) -> list[ShareDoc]:
    """The user's shares, newest first, without their copied messages (a listing needs none)."""
    cursor = db.shares.find({"user_id": user_id}, {"messages": 0}).sort(_NEWEST_FIRST).limit(limit)
    return cast(list[ShareDoc], await cursor.to_list(length=limit))


async def delete_share(*, db: Db, user_id: ObjectId, share_id: str) -> bool:
    result = await db.shares.delete_one({"_id": share_id, "user_id": user_id})
    return result.deleted_count == 1
