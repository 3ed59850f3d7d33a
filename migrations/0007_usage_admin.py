"""Usage, quotas and admin: `usage_daily` holds one document per user per UTC day (unique
`user_day`; the quota's conditional upsert finds the day by its `_id` "<user_id>:<day>", whose
uniqueness refuses a day over its limits), and
`audit` records every admin action (`at` index: the admin page shows the latest first; `target_at`:
one user's history). Idempotent: creating an index that exists is a no-op.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.usage_daily.create_indexes([
        IndexModel([("user_id", ASC), ("day", ASC)], unique=True, name="user_day"),
    ])
    await db.audit.create_indexes([
        IndexModel([("at", DESC)], name="at"),
        IndexModel([("target_id", ASC), ("at", DESC)], name="target_at"),
    ])
