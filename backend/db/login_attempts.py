"""Repository: rate-limited attempts per key; a TTL index drops old ones.

Keys: failed sign-ins per account ("email:<addr>") and per client address ("ip:<addr>"), and
sign-ups per client address ("signup-ip:<addr>", counted whether they succeed or not).
"""

from __future__ import annotations

import datetime as dt

from backend.db.client import Db


async def record(*, db: Db, keys: list[str], at: dt.datetime, window_s: int) -> None:
    expires = at + dt.timedelta(seconds=window_s)
    await db.login_attempts.insert_many([{"key": key, "at": at, "expires_at": expires} for key in keys])


async def count_since(*, db: Db, key: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many attempts `key` has since `since`, and the oldest of them (to compute Retry-After)."""
    query = {"key": key, "at": {"$gte": since}}
    count = await db.login_attempts.count_documents(query)
    if count == 0:
        return 0, None
    oldest = await db.login_attempts.find_one(query, sort=[("at", 1)])
    return count, (oldest["at"] if oldest else None)


async def clear(*, db: Db, key: str) -> None:
    await db.login_attempts.delete_many({"key": key})
