"""Conversations become message trees (edit, branch, continue: docs/chat.md "Conversation tree").

- Every message gets `parent_id`: a linear conversation is chained by (created_at, _id) order.
- Every `alternatives` entry of an answer (an earlier answer kept by the old regenerate) becomes a
  sibling assistant message with its content, status, finish reason, feedback, parameters and
  created_at; its rating in `feedback` moves with it. The current answer stays the shown one and
  becomes the newest version (its created_at a moment after its last alternative's).
- Every conversation gets `current_leaf_id`: its newest message (what the page showed before).
- messages `conversation_parent`: the siblings of one message (GET /messages/{id}, has_children).
Idempotent: a conversation is done once it has `current_leaf_id` (set last, after its messages);
an alternative's message id is derived from its answer's id and position, so a run cut short and
repeated writes the same documents again instead of new copies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING as ASC
from pymongo import IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from backend.db.search_keys import keys

BATCH = 200
_ALT_FIELDS = ("content", "status", "finish_reason", "generated_tokens", "feedback", "parameters", "error")


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.messages.create_indexes([
        IndexModel([("conversation_id", ASC), ("user_id", ASC), ("parent_id", ASC), ("created_at", ASC)],
                   name="conversation_parent"),
    ])
    while True:
        batch = await db.conversations.find({"current_leaf_id": {"$exists": False}}, {"_id": 1}).limit(
            BATCH).to_list(BATCH)
        if not batch:
            return
        for conversation in batch:
            await _convert(db, conversation["_id"])


async def _convert(db: AsyncDatabase[dict[str, Any]], conversation_id: ObjectId) -> None:
    messages = await db.messages.find(
        {"conversation_id": conversation_id},
        {"_id": 1, "conversation_id": 1, "user_id": 1, "role": 1, "created_at": 1, "parent_id": 1, "attempt": 1,
         "alternatives": 1, "feedback": 1, "from_alternative": 1},
    ).sort([("created_at", 1), ("_id", 1)]).to_list(length=None)
    writes: list[Any] = []
    feedback: list[Any] = []
    parent: ObjectId | None = None
    for message in messages:
        if message.get("from_alternative"):
            continue  # written by a run cut short: rewritten below from its answer, if still there
        # A message that already has a parent (stored by the tree) keeps it.
        chained = message.get("parent_id", parent)
        alternatives = message.get("alternatives") or []
        for index, alt in enumerate(alternatives):
            doc = _alternative(message, alt, index, chained)
            writes.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
            if alt.get("feedback"):
                feedback.append(_feedback_write(doc, alt["feedback"]))
        changes: dict[str, Any] = {"$set": {"parent_id": chained, "attempt": message.get("attempt", len(alternatives))}}
        if alternatives:
            changes["$set"]["created_at"] = _after_alternatives(message, alternatives)
        if "alternatives" in message:
            changes["$unset"] = {"alternatives": ""}
            if alternatives and not message.get("feedback"):
                # The answer was regenerated after being rated: the rating stored under its id was
                # the earlier answer's, and moved with it above.
                feedback.append(_drop_feedback(message))
        writes.append(UpdateOne({"_id": message["_id"]}, changes))
        parent = message["_id"]
    if writes:
        await db.messages.bulk_write(writes, ordered=True)
    for write in feedback:
        await write(db)
    leaf = parent  # the newest message of the linear chain: the answer shown until now
    await db.conversations.update_one({"_id": conversation_id}, {"$set": {"current_leaf_id": leaf}})


def _after_alternatives(message: dict[str, Any], alternatives: list[dict[str, Any]]) -> Any:
    """The current answer is the newest version (n / n in the switcher, the one a switch picks):
    a moment after its last alternative, which was made before anything later was said."""
    times = [a["created_at"] for a in alternatives if a.get("created_at")]
    latest = max(times, default=message["created_at"])
    return max(message["created_at"], latest + dt.timedelta(milliseconds=1))


def _alternative(message: dict[str, Any], alt: dict[str, Any], index: int,
                 parent_id: ObjectId | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": _derived_id(message["_id"], index), "conversation_id": message.get("conversation_id"),
        "user_id": message["user_id"], "role": "assistant", "image_ids": [], "parent_id": parent_id,
        "created_at": alt.get("created_at") or message["created_at"],
        "updated_at": alt.get("created_at") or message["created_at"], "attempt": 0,
        "from_alternative": True,  # not part of the linear chain if this conversation is converted again
    }
    doc.update({k: alt.get(k) for k in _ALT_FIELDS})
    doc["content"] = doc["content"] or ""
    doc["status"] = doc["status"] or "complete"
    doc["search_keys"] = keys(doc["content"])
    return doc


def _derived_id(message_id: ObjectId, index: int) -> ObjectId:
    """The same id on every run: 12 bytes of a hash of the answer's id and the position."""
    return ObjectId(hashlib.sha256(f"{message_id}:{index}".encode()).digest()[:12])


def _feedback_write(doc: dict[str, Any], rating: dict[str, Any]) -> Any:
    async def write(db: AsyncDatabase[dict[str, Any]]) -> None:
        await db.feedback.update_one(
            {"message_id": doc["_id"], "user_id": doc["user_id"]},
            {"$set": {"rating": rating.get("rating"), "comment": rating.get("comment"),
                      "conversation_id": doc["conversation_id"], "content": doc["content"],
                      "updated_at": doc["updated_at"]},
             "$setOnInsert": {"created_at": doc["created_at"]}},
            upsert=True)
    return write


def _drop_feedback(message: dict[str, Any]) -> Any:
    async def write(db: AsyncDatabase[dict[str, Any]]) -> None:
        await db.feedback.delete_one({"message_id": message["_id"], "user_id": message["user_id"]})
    return write
