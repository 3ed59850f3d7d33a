"""The title search index gains the conversation's date (issue 38): `user_title_keys_updated`
(user_id, title_keys, updated_at desc) replaces `user_title_keys` (user_id, title_keys).

Search reads newest first in time windows (backend/db/windows.py); a window on the titles is a range
on `updated_at` after the key, which the old index could not serve (the embedded database plans an
index only when it holds every filtered field). Idempotent: the new index is created if missing,
the old one dropped if present.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

OLD = "user_title_keys"


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.conversations.create_indexes([
        IndexModel([("user_id", ASC), ("title_keys", ASC), ("updated_at", DESC)], name="user_title_keys_updated"),
    ])
    existing = {index["name"] async for index in await db.conversations.list_indexes()}
    if OLD in existing:
        await db.conversations.drop_index(OLD)
