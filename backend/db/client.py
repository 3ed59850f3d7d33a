"""The database handle: one AsyncMongoClient per process, opened in the app's lifespan."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]


def open_client(uri: str, *, timeout_ms: int = 5000, retry_writes: bool = True) -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware: stored datetimes come back as aware UTC values, comparable with utcnow().
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="kovr",
                            retryWrites=retry_writes)


async def ping(db: Db) -> bool:
    try:
        await db.command("ping")
        return True
    except Exception:
        return False
