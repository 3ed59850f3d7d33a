"""The stored documents, typed: what each collection holds. Built and read only through `backend.db`.

TypedDicts (not models) because the driver hands back dicts: these name every field a document
may have, so a typo in a field name is a type error rather than a silent `None`. Routes never
return these: they map them to the `*Public` schemas.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, NotRequired, TypedDict

from bson import Binary, ObjectId

Role = Literal["user", "admin"]
MessageRole = Literal["user", "assistant", "system"]
# streaming: a worker owns it (worker_id, lease_until); every other status is final.
MessageStatus = Literal["complete", "streaming", "stopped", "error", "interrupted"]
FINAL_STATUSES: tuple[MessageStatus, ...] = ("complete", "stopped", "error", "interrupted")


class UserDoc(TypedDict):
    _id: ObjectId
    email: str
    password_hash: str
    display_name: str
    role: Role
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    password_changed_at: dt.datetime
    answer_style: NotRequired[str]
    deleting: NotRequired[bool]
    # Set by an admin (backend/services/quota.py); absent or None: the settings' default; 0: unlimited.
    quota_tokens_per_day: NotRequired[int | None]
    quota_messages_per_day: NotRequired[int | None]
    # May the user's rated conversations become training data (`kovr export-feedback`)? Off by default.
    training_consent: NotRequired[bool]


class ConversationDoc(TypedDict):
    _id: ObjectId
    user_id: ObjectId
    title: str
    created_at: dt.datetime
    updated_at: dt.datetime
    model: dict[str, Any] | None
    message_count: int
    # The assistant message being generated in it, if any: one answer at a time, across workers.
    active_message_id: NotRequired[ObjectId | None]
    title_keys: NotRequired[list[str]]  # search index of the title (backend/db/search_keys.py)
    # The last message of the branch shown (and continued by the next message): backend/db/tree.py.
    current_leaf_id: NotRequired[ObjectId | None]
    search_hit_id: NotRequired[ObjectId | None]  # not stored: the message a search found in it


class MessageDoc(TypedDict):
    _id: ObjectId
    conversation_id: ObjectId
    user_id: ObjectId
    role: MessageRole
    content: str
    status: MessageStatus
    image_ids: list[ObjectId]
    created_at: dt.datetime
    updated_at: dt.datetime
    # The message it follows (None: a first user message); siblings share it (backend/db/tree.py).
    parent_id: NotRequired[ObjectId | None]
    # Assistant messages: the generation and its job.
    attempt: NotRequired[int]  # event ids are "<attempt>-<characters>"; kept from before the tree
    parameters: NotRequired[dict[str, Any]]
    worker_id: NotRequired[str | None]
    lease_until: NotRequired[dt.datetime | None]
    search_keys: NotRequired[list[str]]  # search index of the content (backend/db/search_keys.py)
    stop_requested: NotRequired[bool]
    finish_reason: NotRequired[str | None]
    generated_tokens: NotRequired[int]
    prompt_tokens: NotRequired[int | None]
    time_to_first_token_ms: NotRequired[float | None]
    duration_ms: NotRequired[float | None]
    error: NotRequired[str | None]
    feedback: NotRequired[dict[str, Any] | None]


class ImageDoc(TypedDict):
    _id: ObjectId
    user_id: ObjectId
    conversation_id: ObjectId | None
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    data: Binary
    created_at: dt.datetime
    expires_at: NotRequired[dt.datetime]  # while not sent in a message (TTL, migration 0005)


class FeedbackDoc(TypedDict):
    _id: NotRequired[ObjectId]
    message_id: ObjectId
    user_id: ObjectId
    conversation_id: ObjectId
    rating: int
    comment: str | None
    created_at: dt.datetime


class UsageDayDoc(TypedDict):
    """One user's UTC day (backend/db/usage.py); unique (user_id, day)."""

    _id: ObjectId
    user_id: ObjectId
    day: str  # YYYY-MM-DD, UTC
    messages: int
    prompt_tokens: NotRequired[int]
    generated_tokens: NotRequired[int]
    counted_tokens: int  # reserved by running answers + generated: what the token quota compares


class AuditDoc(TypedDict):
    """One admin action (backend/db/audit.py)."""

    _id: NotRequired[ObjectId]
    actor_id: ObjectId
    action: str
    target_id: ObjectId | None
    details: dict[str, Any]
    at: dt.datetime


class SharedMessage(TypedDict):
    """One message as a share copied it: only what the public page shows."""

    role: MessageRole
    content: str
    created_at: dt.datetime
    image_ids: list[ObjectId]


class ShareDoc(TypedDict):
    """A read-only snapshot of a conversation's shown branch, public under /s/<_id>.

    A snapshot rather than a live view: the owner keeps chatting and editing, and a link given
    out must neither change nor leak what was written after it was made."""

    _id: str  # secrets.token_urlsafe: the id is the only secret of a public link
    user_id: ObjectId
    conversation_id: ObjectId
    title: str
    messages: list[SharedMessage]
    image_ids: list[ObjectId]  # every image of `messages`: the only ones /s/<id>/images/ serves
    created_at: dt.datetime
