"""Generations live in the database: indexes for the jobs and for the chat path's bounded queries.

- messages `status_lease`: the sweep for jobs whose worker died (streaming, lease expired).
- messages `user_role_created`: the per-user message rate check reads one minute, not the history.
- Answers stored before this release that are still `streaming` had no owner that could finish
  them: they end as `interrupted` with their text (what the old re-attach did lazily).
Idempotent: index creation is, and the update matches nothing the second time.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.messages.create_indexes([
        IndexModel([("status", ASC), ("lease_until", ASC)], name="status_lease"),
        IndexModel([("user_id", ASC), ("role", ASC), ("created_at", ASC)], name="user_role_created"),
    ])
    await db.messages.update_many(
        {"status": "streaming", "worker_id": {"$exists": False}},
        {"$set": {"status": "interrupted", "error": "interrupted"}},
    )
