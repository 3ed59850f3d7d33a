"""Repository reads for `kovr export-feedback`: who consented, their rated answers, and the
conversations around them. Read-only; scoped by `user_id` like every other message query."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from bson import ObjectId

from backend.db.client import Db
from backend.db.models import MessageDoc

_RATED: dict[str, Any] = {"role": "assistant", "feedback.rating": {"$exists": True}}
_OLDEST_FIRST = [("created_at", 1), ("_id", 1)]
_NO_KEYS = {"search_keys": 0}


def _since(since: dt.datetime | None) -> dict[str, Any]:
    return {} if since is None else {"created_at": {"$gte": since}}


async def consenting_user_ids(*, db: Db) -> list[ObjectId]:
    """Users who turned training consent on, except accounts being erased."""
    docs = await db.users.find({"training_consent": True}, {"_id": 1, "deleting_since": 1}).to_list(length=None)
    return [d["_id"] for d in docs if "deleting_since" not in d]


async def count_rated_answers(*, db: Db, since: dt.datetime | None) -> int:
    """Every rated answer in the window, whoever wrote it (to report how many consent left out)."""
    return await db.messages.count_documents({**_RATED, **_since(since)})


async def rated_answers(*, db: Db, user_id: ObjectId, since: dt.datetime | None) -> list[MessageDoc]:
    cursor = db.messages.find({"user_id": user_id, **_RATED, **_since(since)}, _NO_KEYS).sort(_OLDEST_FIRST)
    return cast(list[MessageDoc], await cursor.to_list(length=None))


async def conversation_messages(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> list[MessageDoc]:
    """All of one conversation's messages, every branch, oldest first (paths are built from them)."""
    cursor = db.messages.find({"conversation_id": conversation_id, "user_id": user_id}, _NO_KEYS).sort(_OLDEST_FIRST)
    return cast(list[MessageDoc], await cursor.to_list(length=None))
