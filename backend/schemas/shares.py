"""Share links: what the owner sees of one (never the copied messages: those are the public page)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field


class SharePublic(BaseModel):
    id: str = Field(description="the link's unguessable id")
    url: str = Field(description="the public, read-only page: no account needed")
    conversation_id: str
    title: str
    created_at: dt.datetime

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], *, base_url: str) -> SharePublic:
        return cls(id=doc["_id"], url=f"{base_url.rstrip('/')}/s/{doc['_id']}",
                   conversation_id=str(doc["conversation_id"]), title=doc["title"], created_at=doc["created_at"])


class ShareList(BaseModel):
    items: list[SharePublic]
