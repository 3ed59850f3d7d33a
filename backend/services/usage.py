"""A user's usage: the last 30 UTC days (for the settings chart and the API), this month's
totals, and where the day stands against the quota."""

from __future__ import annotations

import datetime as dt
from typing import Any

from backend.core.clock import utcnow
from backend.db import usage as usage_repo
from backend.db.client import Db
from backend.schemas.usage import QuotaPublic, UsageDay, UsagePublic, UsageTotals
from backend.services.quota import limits_for
from kovr.settings import Settings

DAYS = 30


def _day(doc: dict[str, Any] | None, day: dt.date) -> UsageDay:
    doc = doc or {}
    return UsageDay(day=day, messages=doc.get("messages", 0), prompt_tokens=doc.get("prompt_tokens", 0),
                    generated_tokens=doc.get("generated_tokens", 0))


def _sum(days: list[UsageDay]) -> UsageTotals:
    return UsageTotals(messages=sum(d.messages for d in days), prompt_tokens=sum(d.prompt_tokens for d in days),
                       generated_tokens=sum(d.generated_tokens for d in days))


async def report(settings: Settings, db: Db, *, user: dict[str, Any]) -> UsagePublic:
    now = utcnow()
    today = now.date()
    first = today - dt.timedelta(days=DAYS - 1)
    month_start = today.replace(day=1)
    docs = await usage_repo.days(db=db, user_id=user["_id"], since=min(first, month_start).isoformat())
    by_day = {d["day"]: d for d in docs}
    days = [_day(by_day.get(day.isoformat()), day) for day in (first + dt.timedelta(days=i) for i in range(DAYS))]
    month = [_day(doc, dt.date.fromisoformat(key)) for key, doc in by_day.items() if key >= month_start.isoformat()]
    limits, now_doc = limits_for(settings, user), by_day.get(today.isoformat(), {})
    quota = QuotaPublic(messages_per_day=limits.messages, tokens_per_day=limits.tokens,
                        messages_today=now_doc.get("messages", 0), tokens_today=now_doc.get("counted_tokens", 0),
                        resets_at=usage_repo.next_reset(now))
    return UsagePublic(days=days, month=_sum(month), quota=quota)
