"""Repository: usage per user per UTC day (`usage_daily`), and the quota reservations made on it.

One document per (user_id, day), `_id` "<user_id>:<day>", also unique index `user_day` (migration
0007); `day` is "YYYY-MM-DD" in UTC.
Fields: `messages` (answers started), `prompt_tokens` and `generated_tokens` (the model server's
counts, added when an answer ends), `counted_tokens` (what the token quota compares: tokens
reserved by answers still running plus tokens actually generated). Every change is one atomic
update, so concurrent answers on several workers never lose a count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from backend.core.clock import utcnow
from backend.db.client import Db


@dataclass(frozen=True)
class Reservation:
    """What one answer took from a day's quota before it started: settled when it ends."""

    user_id: ObjectId
    day: str
    tokens: int
    # False: nothing was written (no limits to hold); the answer's message is counted when it settles.
    counted: bool = True


@dataclass(frozen=True)
class Limits:
    """A day's limits; 0 = unlimited."""

    messages: int
    tokens: int


def day_of(at: dt.datetime | None = None) -> str:
    return (at or utcnow()).astimezone(dt.UTC).strftime("%Y-%m-%d")


def next_reset(at: dt.datetime | None = None) -> dt.datetime:
    """The next UTC midnight: when a day's quota starts over."""
    now = (at or utcnow()).astimezone(dt.UTC)
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _key(user_id: ObjectId, day: str) -> str:
    """The document's `_id`: one per user and day by construction, and a point lookup for the
    reservation's filter (which also names both counts: the embedded SecantusDB would plan no index
    for that filter and scan the collection on every answer)."""
    return f"{user_id}:{day}"


def _under(limits: Limits) -> dict[str, Any]:
    condition: dict[str, Any] = {}
    if limits.messages:
        condition["messages"] = {"$lt": limits.messages}
    if limits.tokens:
        condition["counted_tokens"] = {"$lt": limits.tokens}
    return condition


async def reserve(*, db: Db, user_id: ObjectId, tokens: int, limits: Limits) -> Reservation | None:
    """Take one message and `tokens` from today's quota if the day is still under its limits
    (None if not). One conditional upsert: when the day's document exists and is over a limit the
    filter does not match and the upsert's insert hits the unique index. A first-of-day race can
    also hit it once, hence one retry (the document exists by then). Without limits nothing is
    held, so nothing is written: settling counts the message (one write per answer fewer)."""
    day = day_of()
    if not limits.messages and not limits.tokens:
        return Reservation(user_id, day, 0, counted=False)
    change = {"$inc": {"messages": 1, "counted_tokens": tokens}, "$setOnInsert": {"user_id": user_id, "day": day}}
    for _ in range(2):
        try:
            await db.usage_daily.update_one({"_id": _key(user_id, day), **_under(limits)}, change, upsert=True)
            return Reservation(user_id, day, tokens)
        except DuplicateKeyError:
            continue
    return None


async def settle(*, db: Db, reservation: Reservation, prompt_tokens: int, generated_tokens: int) -> None:
    """An answer ended: record its real counts and give back what it reserved and did not use."""
    await db.usage_daily.update_one(
        {"_id": _key(reservation.user_id, reservation.day)},
        {"$inc": {"prompt_tokens": prompt_tokens, "generated_tokens": generated_tokens,
                  "counted_tokens": generated_tokens - reservation.tokens, "messages": int(not reservation.counted)},
         "$setOnInsert": {"user_id": reservation.user_id, "day": reservation.day}},
        upsert=True,
    )


async def release(*, db: Db, reservation: Reservation) -> None:
    """An answer that never started: its message and tokens go back."""
    if not reservation.counted:
        return
    await db.usage_daily.update_one({"_id": _key(reservation.user_id, reservation.day)},
                                    {"$inc": {"messages": -1, "counted_tokens": -reservation.tokens}})


async def days(*, db: Db, user_id: ObjectId, since: str) -> list[dict[str, Any]]:
    """The user's days from `since` on (inclusive), oldest first."""
    cursor = db.usage_daily.find({"user_id": user_id, "day": {"$gte": since}}).sort("day", 1)
    return await cursor.to_list(length=400)


async def totals_by_user(*, db: Db, user_ids: list[ObjectId], since: str) -> dict[ObjectId, dict[str, int]]:
    """Sums per user from `since` on (the admin's user list): one index lookup per user, at once
    (SecantusDB plans no index for `user_id: {$in: …}`)."""
    found = await asyncio.gather(*(days(db=db, user_id=u, since=since) for u in user_ids))
    fields = ("messages", "prompt_tokens", "generated_tokens")
    return {u: {f: sum(d.get(f, 0) for d in docs) for f in fields} for u, docs in zip(user_ids, found, strict=True)}
