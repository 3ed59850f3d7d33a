"""Usage and quotas as the API shows them (`GET /api/v1/users/me/usage`, the admin's user list)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class UsageTotals(BaseModel):
    messages: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0


class UsageDay(UsageTotals):
    day: dt.date = Field(description="a UTC day")


class QuotaPublic(BaseModel):
    messages_per_day: int = Field(description="answers per UTC day; 0 = unlimited")
    tokens_per_day: int = Field(description="generated tokens per UTC day; 0 = unlimited")
    messages_today: int
    tokens_today: int = Field(description="generated today, plus what answers running now reserved")
    resets_at: dt.datetime = Field(description="the next UTC midnight, when the day's counts start over")


class UsagePublic(BaseModel):
    days: list[UsageDay] = Field(description="the last 30 UTC days, oldest first, days without use included")
    month: UsageTotals = Field(description="this UTC month so far")
    quota: QuotaPublic
