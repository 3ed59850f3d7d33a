"""The admin API (`/api/v1/admin/...`): users with their usage, quotas, the audit trail, the model server."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.usage import UsageTotals


class AdminUser(BaseModel):
    id: str
    email: str
    display_name: str
    role: Literal["user", "admin"]
    disabled: bool
    created_at: dt.datetime
    quota_messages_per_day: int | None = Field(description="the user's own limit; null: the default; 0: unlimited")
    quota_tokens_per_day: int | None = Field(description="the user's own limit; null: the default; 0: unlimited")
    today: UsageTotals = Field(description="this UTC day")
    month: UsageTotals = Field(description="this UTC month")


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class QuotaUpdate(BaseModel):
    """A user's own daily limits; null puts the default back, 0 is unlimited."""

    model_config = ConfigDict(extra="forbid")
    messages_per_day: int | None = Field(default=None, ge=0, le=1_000_000)
    tokens_per_day: int | None = Field(default=None, ge=0, le=1_000_000_000)


class AuditEntry(BaseModel):
    id: str
    actor_id: str
    action: str
    target_id: str | None
    details: dict[str, Any]
    at: dt.datetime


class ModelState(BaseModel):
    reachable: bool
    info: dict[str, Any] = Field(description="the model server's /info (TGI fields and model_server's)")
    queue_length: float | None = Field(description="requests waiting for a slot")
    running: float | None = Field(description="requests generating now")
    tokens_per_second: float | None = Field(description="decode rate of one request, recent average")
    throughput: float | None = Field(description="tokens per second of all requests since the previous look")
    generated_tokens: float | None = Field(description="since the model server started")
    window_s: float | None = Field(description="the span 'recent' covers; null: since the server started")
