"""An index for accounts whose erasure began (users.deleting_since), so start-up finds them at once.

Sparse: only accounts being deleted carry the field. Index creation is idempotent.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.users.create_indexes([IndexModel([("deleting_since", ASCENDING)], sparse=True, name="deleting_since")])
