"""Personal API tokens: created with a name; the full token is shown once, then only its prefix."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.core.text import TokenName


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: TokenName


class ApiTokenPublic(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    created_at: dt.datetime
    last_used_at: dt.datetime | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ApiTokenPublic:
        return cls(
            id=str(doc["_id"]),
            name=doc["name"],
            prefix=doc["prefix"],
            created_at=doc["created_at"],
            last_used_at=doc.get("last_used_at"),
        )


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="the full token; shown only in this response")
