"""Repository: users. Emails are stored NFKC, IDNA domain, lower case (core.text.normalise_email);
unique index `email_unique`."""

from __future__ import annotations

from typing import Any, Literal

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from backend.core import text
from backend.core.clock import utcnow
from backend.db.auth_cache import CACHE
from backend.db.client import Db

Role = Literal["user", "admin"]


class EmailTaken(Exception):
    pass


def normalise_email(email: str) -> str:
    return text.normalise_email(email)


async def create_user(
    *, db: Db, email: str, password_hash: str, display_name: str, role: Role = "user"
) -> dict[str, Any]:
    now = utcnow()
    doc: dict[str, Any] = {
        "email": normalise_email(email),
        "password_hash": password_hash,
        "display_name": display_name,
        "role": role,
        "disabled": False,
        "created_at": now,
        "updated_at": now,
        "password_changed_at": now,
        "training_consent": False,  # opt-in only (see `kovr export-feedback`)
    }
    try:
        result = await db.users.insert_one(doc)
    except DuplicateKeyError:
        raise EmailTaken(email) from None
    doc["_id"] = result.inserted_id
    return doc


async def get_user(*, db: Db, user_id: ObjectId) -> dict[str, Any] | None:
    return await db.users.find_one({"_id": user_id})


async def get_user_by_email(*, db: Db, email: str) -> dict[str, Any] | None:
    return await db.users.find_one({"email": normalise_email(email)})


async def update_user(*, db: Db, user_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any] | None:
    allowed = {k: v for k, v in changes.items() if k in {"display_name", "disabled", "role", "answer_style",
                                                            "training_consent"}}
    result = await db.users.find_one_and_update(
        {"_id": user_id}, {"$set": {**allowed, "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER
    )
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it
    return result


async def set_password_hash(*, db: Db, user_id: ObjectId, password_hash: str) -> None:
    now = utcnow()
    await db.users.update_one(
        {"_id": user_id},
        {"$set": {"password_hash": password_hash, "password_changed_at": now, "updated_at": now}},
    )
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it


async def mark_deleting(*, db: Db, user_id: ObjectId) -> None:
    """Disable the account and record that its erasure has begun (so a restart can finish it)."""
    now = utcnow()
    await db.users.update_one({"_id": user_id}, {"$set": {"disabled": True, "deleting_since": now, "updated_at": now}})
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it


async def users_being_deleted(*, db: Db, limit: int = 1000) -> list[dict[str, Any]]:
    """Accounts whose erasure began and did not finish (sparse index `deleting_since`)."""
    cursor = db.users.find({"deleting_since": {"$exists": True}}).sort("deleting_since", 1).limit(limit)
    return [doc async for doc in cursor]


async def delete_user(*, db: Db, user_id: ObjectId) -> None:
    await db.users.delete_one({"_id": user_id})
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it


async def list_users(*, db: Db, after: ObjectId | None, limit: int) -> list[dict[str, Any]]:
    """Oldest first, a page after the `_id` `after` (the admin's user list)."""
    query: dict[str, Any] = {} if after is None else {"_id": {"$gt": after}}
    return await db.users.find(query).sort("_id", 1).limit(limit).to_list(length=limit)


async def set_quota(*, db: Db, user_id: ObjectId, messages_per_day: int | None,
                    tokens_per_day: int | None) -> dict[str, Any] | None:
    """A user's own daily limits (None: the settings' default)."""
    result = await db.users.find_one_and_update(
        {"_id": user_id},
        {"$set": {"quota_messages_per_day": messages_per_day, "quota_tokens_per_day": tokens_per_day,
                  "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    CACHE.forget_user(user_id)  # after the write: this process's cached sign-ins see it
    return result


async def promote_if_first(*, db: Db, user_id: ObjectId) -> bool:
    """Make the account an admin if it is the oldest one (`first_user_admin`): of accounts
    created at once, exactly one is the oldest, so exactly one is promoted."""
    first = await db.users.find_one({}, {"_id": 1}, sort=[("_id", 1)])
    if first is None or first["_id"] != user_id:
        return False
    await update_user(db=db, user_id=user_id, changes={"role": "admin"})
    return True
