"""Conversations and their messages as clients see them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.chat.schemas import MessageCreate
from backend.core.text import Title
from backend.schemas.common import public_value

DEFAULT_TITLE = "새 대화"


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title = DEFAULT_TITLE
    # With a first message the answer streams back at once (SSE), as POST .../messages does.
    message: MessageCreate | None = None


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title


class ConversationPublic(BaseModel):
    id: str
    title: str
    created_at: dt.datetime
    updated_at: dt.datetime
    model: dict[str, Any] | None = None
    message_count: int = Field(default=0, description="messages stored, in every branch")
    current_leaf_id: str | None = Field(default=None, description="the last message of the branch shown")

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ConversationPublic:
        leaf = doc.get("current_leaf_id")
        return cls(
            id=str(doc["_id"]),
            title=doc["title"],
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            model=public_value(doc.get("model")),
            message_count=doc.get("message_count", 0),
            current_leaf_id=None if leaf is None else str(leaf),
        )


class ConversationPage(BaseModel):
    items: list[ConversationPublic]
    next_cursor: str | None = None


# Optional message fields the chat engine stores and clients may see; extend with .add(...).
MESSAGE_EXTRA_FIELDS: set[str] = {
    "parameters",
    "finish_reason",
    "generated_tokens",
    "prompt_tokens",
    "time_to_first_token_ms",
    "duration_ms",
    "feedback",
    "error",
    "model",
}


class SiblingsPublic(BaseModel):
    """The message among its siblings (the versions of one message: edits, regenerated answers),
    oldest first: `index` is 1-based, as a switcher shows it ("2 / 3")."""

    index: int
    count: int
    ids: list[str]

    @classmethod
    def from_tree(cls, siblings: Any) -> SiblingsPublic:
        """From backend.db.tree.Siblings (duck-typed: schemas stay below the database layer)."""
        return cls(index=siblings.index, count=siblings.count, ids=[str(i) for i in siblings.ids])


class MessagePublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    conversation_id: str
    role: str
    content: str
    status: str
    image_ids: list[str]
    created_at: dt.datetime
    parent_id: str | None = Field(default=None, description="the message it follows; null for a first message")
    siblings: SiblingsPublic | None = Field(default=None, description="in listings and GET /messages/{id}")

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], siblings: Any = None) -> MessagePublic:
        extra = {k: public_value(doc[k]) for k in MESSAGE_EXTRA_FIELDS if doc.get(k) is not None}
        parent = doc.get("parent_id")
        return cls(
            id=str(doc["_id"]),
            conversation_id=str(doc["conversation_id"]),
            parent_id=None if parent is None else str(parent),
            siblings=None if siblings is None else SiblingsPublic.from_tree(siblings),
            role=doc["role"],
            content=doc["content"],
            status=doc["status"],
            image_ids=[str(i) for i in doc.get("image_ids", [])],
            created_at=doc["created_at"],
            **extra,
        )


class MessagePage(BaseModel):
    items: list[MessagePublic]
    next_cursor: str | None = None
