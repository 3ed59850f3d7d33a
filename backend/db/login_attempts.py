"""Repository: rate-limit counters, one document per key and fixed window; a TTL index drops old ones.

Each attempt is one atomic `find_one_and_update` (`$inc` with upsert) that returns the new count,
and the caller decides on that count: N concurrent attempts get the counts 1..N, so exactly the
limit get through — there is no read-then-write gap between checking and counting.

Keys: sign-in attempts per account ("email:<addr>"), per account and client address
("email-ip:<addr>|<ip>") and per client address ("ip:<ip>"); sign-ups per client address
("signup-ip:<ip>"); image uploads per user ("upload:<user id>").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from backend.db.client import Db


def window_of(at: dt.datetime, window_s: int) -> tuple[int, dt.datetime]:
    """The fixed window `at` falls in: its number and its end."""
    number = math.floor(at.timestamp() / window_s)
    return number, dt.datetime.fromtimestamp((number + 1) * window_s, tz=dt.UTC)


async def hit(*, db: Db, key: str, at: dt.datetime, window_s: int) -> tuple[int, dt.datetime]:
    """Count one attempt for `key` in its current window; returns the count with it and the window's end."""
    number, ends = window_of(at, window_s)
    query = {"_id": f"{key}@{window_s}:{number}"}
    # The window's document exists first (racing creators: one inserts, the others match or get a
    # duplicate key), then the increment itself is the one atomic step that decides. (An upsert
    # that also increments would do on MongoDB, but the embedded SecantusDB sometimes returns no
    # document from racing upserts.)
    with contextlib.suppress(DuplicateKeyError):
        await db.login_attempts.update_one(
            query, {"$setOnInsert": {"key": key, "count": 0, "expires_at": ends}}, upsert=True
        )
    doc = await db.login_attempts.find_one_and_update(
        query, {"$inc": {"count": 1}}, return_document=ReturnDocument.AFTER
    )
    if doc is None:  # the TTL monitor removed it between the two steps: the window just ended
        return await hit(db=db, key=key, at=dt.datetime.now(dt.UTC), window_s=window_s)
    return int(doc["count"]), ends


async def give_back(*, db: Db, key: str, at: dt.datetime, window_s: int) -> None:
    """Uncount one attempt (a good sign-in does not use up the account's allowance)."""
    number, _ = window_of(at, window_s)
    await db.login_attempts.update_one({"_id": f"{key}@{window_s}:{number}", "count": {"$gt": 0}},
                                       {"$inc": {"count": -1}})


async def clear(*, db: Db, key: str) -> None:
    await db.login_attempts.delete_many({"key": key})


async def clear_prefix(*, db: Db, prefix: str) -> None:
    await db.login_attempts.delete_many({"key": {"$regex": "^" + re.escape(prefix)}})
