"""Two indexes fewer on `messages` (issue 38): every write to a message pays for every index, and
a streaming answer is written several times (inserted, saved, finished).

- `conversation_created` (conversation_id, created_at, _id): every query on a conversation's
  messages also names its owner, and `conversation_user_created` (conversation_id, user_id,
  created_at, _id) serves those, in either order.
- `user` (user_id): `user_role_created` and `user_search_keys` start with user_id and serve a
  query on the owner alone (erasing an account).

On the embedded database an update rewrites the entries of every index, about 0.5 ms of its CPU
each (bench/bench_chat_load.py reports the database's CPU per answer). Idempotent: an index
already gone is skipped.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

REDUNDANT = ("conversation_created", "user")


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    existing = {index["name"] async for index in await db.messages.list_indexes()}
    for name in REDUNDANT:
        if name in existing:
            await db.messages.drop_index(name)
