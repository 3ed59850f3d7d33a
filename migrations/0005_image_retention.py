"""Unattached uploads expire: a TTL index on images.expires_at (set on upload, removed when the
image is sent in a message), and the same deadline for unattached images stored before this
release (a day from now: the setting's default). Rate counters need nothing new: they reuse the
login_attempts collection and its TTL index. Idempotent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.images.create_indexes([IndexModel([("expires_at", ASC)], expireAfterSeconds=0, name="expires_ttl")])
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    await db.images.update_many({"conversation_id": None, "expires_at": {"$exists": False}},
                                {"$set": {"expires_at": deadline}})
