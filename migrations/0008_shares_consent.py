"""Share links and training consent (issue 42).

- `shares`: one document per link, keyed by its unguessable id (`_id`, unique by nature, so a
  second index on it would only cost writes); `user_created` lists an owner's links and
  `conversation_user` deletes them with their conversation.
- `users.training_consent`: false where missing, so consent is always an explicit opt-in and the
  export can ask for `training_consent: true` through the `training_consent` index.
Index creation and the `$exists: false` update are idempotent: running this twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    if "shares" not in await db.list_collection_names():
        await db.create_collection("shares")
    await db.shares.create_indexes([
        IndexModel([("user_id", ASC), ("created_at", DESC), ("_id", DESC)], name="user_created"),
        IndexModel([("conversation_id", ASC), ("user_id", ASC)], name="conversation_user"),
    ])
    await db.users.create_indexes([IndexModel([("training_consent", ASC)], name="training_consent")])
    await db.users.update_many({"training_consent": {"$exists": False}}, {"$set": {"training_consent": False}})
