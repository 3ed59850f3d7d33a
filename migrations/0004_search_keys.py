"""Korean search by index, and the chat path's queries on indexes that hold every field they filter.

- messages `user_search_keys` (user_id, search_keys, _id desc) and conversations `user_title_keys`:
  the bigram index of backend/db/search_keys.py; messages and titles stored before this release
  get their keys here (backfill in batches by `_id`).
- messages `conversation_user_created`: a prompt's history (conversation_id and user_id, newest
  first). The embedded SecantusDB plans an index only when it holds every filtered field, so the
  older `conversation_created` index left that read a collection scan, growing with the database.
Idempotent: index creation is, and the backfill touches only documents without keys.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from backend.db.search_keys import keys

BATCH = 500


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.messages.create_indexes([
        IndexModel([("user_id", ASC), ("search_keys", ASC), ("_id", DESC)], name="user_search_keys"),
        IndexModel([("conversation_id", ASC), ("user_id", ASC), ("created_at", DESC), ("_id", DESC)],
                   name="conversation_user_created"),
    ])
    await db.conversations.create_indexes([
        IndexModel([("user_id", ASC), ("title_keys", ASC)], name="user_title_keys"),
    ])
    await _backfill(db, "messages", "content", "search_keys")
    await _backfill(db, "conversations", "title", "title_keys")


async def _backfill(db: AsyncDatabase[dict[str, Any]], collection: str, source: str, target: str) -> None:
    while True:
        batch = await db[collection].find({target: {"$exists": False}}, {source: 1}).limit(BATCH).to_list(BATCH)
        if not batch:
            return
        await db[collection].bulk_write(
            [UpdateOne({"_id": d["_id"]}, {"$set": {target: keys(d.get(source) or "")}}) for d in batch],
            ordered=False,
        )
