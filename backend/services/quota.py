"""Daily quotas: the one check every answer passes before it starts (chat send, regenerate,
`/v1/chat/completions`), and the settling when it ends.

    reservation = await quota.reserve(settings, db, user_id=..., tokens=max_new_tokens)  # 429 if over
    ...                                  # the answer runs; the chat's JobRunner settles it itself
    await quota.settle(db, reservation, prompt_tokens=..., generated_tokens=...)
    await quota.release(db, reservation)  # the answer never started

A reservation counts the message and `max_new_tokens` at once, in one conditional update, and
only while the day is under its limits: concurrent requests (on any worker) can overshoot the
token limit by at most one answer and never the message limit. Settling replaces the reserved
tokens by the generated ones. An answer whose worker died is never settled: its reservation
stays counted for that day (the quota errs on the strict side).
Without limits (the default) nothing is held: no write before the answer, and settling counts
the message (an answer whose worker died is then not counted at all).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from bson import ObjectId

from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import usage as usage_repo
from backend.db import users as users_repo
from backend.db.client import Db
from backend.db.usage import Limits, Reservation
from kovr.settings import Settings

KST = dt.timezone(dt.timedelta(hours=9))


def limits_for(settings: Settings, user: dict[str, Any]) -> Limits:
    """The user's own limits where an admin set them (None = the settings' default; 0 = unlimited)."""
    messages, tokens = user.get("quota_messages_per_day"), user.get("quota_tokens_per_day")
    return Limits(messages=settings.quota_messages_per_day if messages is None else messages,
                  tokens=settings.quota_tokens_per_day if tokens is None else tokens)


def over_quota(now: dt.datetime | None = None) -> AppError:
    """429 quota_exceeded saying when the day starts over (next UTC midnight; Korean time first)."""
    now = now or utcnow()
    reset = usage_repo.next_reset(now)
    seconds = max(1, math.ceil((reset - now).total_seconds()))
    return AppError("quota_exceeded", text="daily_quota_exceeded", retry_after_s=seconds, params={
        "reset_kst": reset.astimezone(KST).strftime("%Y-%m-%d %H:%M"),
        "reset_utc": reset.strftime("%Y-%m-%d %H:%M UTC"), "hours": str(max(1, round(seconds / 3600))),
    })


async def reserve(settings: Settings, db: Db, *, user_id: ObjectId, tokens: int) -> Reservation:
    user = await users_repo.get_user(db=db, user_id=user_id)
    limits = limits_for(settings, user or {})
    reservation = await usage_repo.reserve(db=db, user_id=user_id, tokens=tokens, limits=limits)
    if reservation is None:
        raise over_quota()
    return reservation


async def settle(db: Db, reservation: Reservation, *, prompt_tokens: int | None, generated_tokens: int) -> None:
    await usage_repo.settle(db=db, reservation=reservation, prompt_tokens=prompt_tokens or 0,
                            generated_tokens=generated_tokens)


async def release(db: Db, reservation: Reservation | BaseException | None) -> None:
    """Give back a reservation whose answer never started (anything else, e.g. the error that a
    concurrent `reserve` raised, is ignored: callers pass what asyncio.gather returned)."""
    if isinstance(reservation, Reservation):
        await usage_repo.release(db=db, reservation=reservation)
