"""Repository: failed sign-in attempts per key ("email:<addr>" or "ip:<addr>"); a TTL index drops old ones."""

from __future__ import annotations

import datetime as dt

from backend.db.client import Db


async def record_failure(*, db: Db, keys: list[str], at: dt.datetime, window_s: int) -> None:
    expires = at + dt.timedelta(seconds=window_s)
    await db.login_attempts.insert_many([{"key": key, "at": at, "expires_at": expires} for key in keys])


async def failures_since(*, db: Db, key: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many failures `key` has since `since`, and the oldest of them (to compute Retry-After)."""
    query = {"key": key, "at": {"$gte": since}}
    count = await db.login_attempts.count_documents(query)
    if count == 0:
        return 0, None
    oldest = await db.login_attempts.find_one(query, sort=[("at", 1)])
    return count, (oldest["at"] if oldest else None)


async def clear_failures(*, db: Db, key: str) -> None:
    await db.login_attempts.delete_many({"key": key})
