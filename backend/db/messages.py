"""Repository: messages, and the generation job each streaming assistant message carries.

Every query is scoped by `user_id` except the job's own writes, which are scoped by the worker
that owns the job (`worker_id`) instead: a worker that lost its lease can no longer write.
Writes use `update_one` (no document comes back) unless the caller needs the result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from bson import ObjectId

from backend.core.clock import utcnow
from backend.db.client import Db
from backend.db.models import MessageDoc, MessageRole, MessageStatus
from backend.db.search_keys import keys as search_keys

_OLDEST_FIRST = [("created_at", 1), ("_id", 1)]
_NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
_NO_KEYS = {"search_keys": 0}  # the search index's keys stay in the database: never read back


def new_message(
    *, conversation_id: ObjectId, user_id: ObjectId, role: MessageRole, content: str,
    status: MessageStatus = "complete", image_ids: Sequence[ObjectId] = (), message_id: ObjectId | None = None,
    parent_id: ObjectId | None = None,
) -> MessageDoc:
    now = utcnow()
    doc = MessageDoc(
        _id=message_id or ObjectId(), conversation_id=conversation_id, user_id=user_id, role=role,
        content=content, status=status, image_ids=list(image_ids), created_at=now, updated_at=now,
        parent_id=parent_id,
    )
    doc["search_keys"] = search_keys(content)
    return doc


def new_job(doc: MessageDoc, *, worker_id: str, lease_s: float, parameters: dict[str, Any], attempt: int) -> None:
    """Make an assistant message a running job owned by `worker_id` (fields set in place)."""
    doc.update({
        "status": "streaming", "worker_id": worker_id, "lease_until": utcnow() + dt.timedelta(seconds=lease_s),
        "stop_requested": False, "parameters": parameters, "attempt": attempt, "generated_tokens": 0,
        "finish_reason": None, "error": None, "feedback": None,
    })


def attempt_of(doc: MessageDoc) -> int:
    """The first number of the message's event ids (migration 0006 kept it for older answers)."""
    return doc.get("attempt", 0)


async def insert_messages(*, db: Db, docs: Sequence[MessageDoc]) -> None:
    await db.messages.insert_many([dict(d) for d in docs])


async def create_message(
    *, db: Db, conversation_id: ObjectId, user_id: ObjectId, role: MessageRole, content: str,
    status: MessageStatus = "complete", image_ids: Sequence[ObjectId] = (),
) -> MessageDoc:
    """One finished message at the end of the conversation's shown branch, which it then ends
    (imports, seeding); the chat stores its messages with `insert_messages`."""
    conversation = await db.conversations.find_one({"_id": conversation_id, "user_id": user_id},
                                                   {"current_leaf_id": 1})
    doc = new_message(conversation_id=conversation_id, user_id=user_id, role=role, content=content, status=status,
                      image_ids=image_ids, parent_id=(conversation or {}).get("current_leaf_id"))
    await insert_messages(db=db, docs=[doc])
    await db.conversations.update_one({"_id": conversation_id, "user_id": user_id},
                                      {"$set": {"current_leaf_id": doc["_id"]}})
    return doc


async def get_message(*, db: Db, user_id: ObjectId, message_id: ObjectId) -> MessageDoc | None:
    return cast(MessageDoc | None, await db.messages.find_one({"_id": message_id, "user_id": user_id}, _NO_KEYS))


async def get_job(*, db: Db, message_id: ObjectId) -> MessageDoc | None:
    """A message by id alone: for the worker that follows a job it has already checked the owner of."""
    return cast(MessageDoc | None, await db.messages.find_one({"_id": message_id}, _NO_KEYS))


async def set_fields(*, db: Db, user_id: ObjectId, message_id: ObjectId, changes: dict[str, Any]) -> bool:
    protected = {"_id", "conversation_id", "user_id", "created_at"}
    fields = {k: v for k, v in changes.items() if k not in protected}
    if "content" in fields:
        fields["search_keys"] = search_keys(fields["content"])
    result = await db.messages.update_one(
        {"_id": message_id, "user_id": user_id}, {"$set": {**fields, "updated_at": utcnow()}}
    )
    return result.matched_count == 1


async def continue_job(
    *, db: Db, message: MessageDoc, worker_id: str, lease_s: float, parameters: dict[str, Any],
) -> MessageDoc | None:
    """Continue: an answer that ended on `length` becomes this worker's job again, its text kept
    (the job appends to it). None if it changed meanwhile (already continued, deleted)."""
    job: dict[str, Any] = {}
    new_job(cast(MessageDoc, job), worker_id=worker_id, lease_s=lease_s, parameters=parameters,
            attempt=attempt_of(message))
    job.update(generated_tokens=message.get("generated_tokens", 0), updated_at=utcnow())
    result = await db.messages.update_one(
        {"_id": message["_id"], "user_id": message["user_id"], "status": "complete", "finish_reason": "length"},
        {"$set": job},
    )
    if result.modified_count != 1:
        return None
    return cast(MessageDoc, {**message, **job})


async def save_progress(
    *, db: Db, message_id: ObjectId, worker_id: str, content: str, generated_tokens: int, lease_until: dt.datetime,
) -> bool:
    """The owner's periodic write (text so far + lease). False: a stop was requested, or the job is no
    longer this worker's (its lease ran out and another worker settled it)."""
    result = await db.messages.update_one(
        {"_id": message_id, "worker_id": worker_id, "status": "streaming", "stop_requested": {"$ne": True}},
        {"$set": {"content": content, "generated_tokens": generated_tokens, "lease_until": lease_until}},
    )
    return result.matched_count == 1


async def finish_job(*, db: Db, message_id: ObjectId, worker_id: str, changes: dict[str, Any]) -> bool:
    """The owner's final write: the status leaves `streaming`, the lease is dropped, the final text
    is indexed for search (the periodic saves do not index: a running answer is found once it ends)."""
    if "content" in changes:
        changes = {**changes, "search_keys": search_keys(changes["content"])}
    result = await db.messages.update_one(
        {"_id": message_id, "worker_id": worker_id, "status": "streaming"},
        {"$set": {**changes, "worker_id": None, "lease_until": None, "updated_at": utcnow()}},
    )
    return result.matched_count == 1


async def request_stop(*, db: Db, user_id: ObjectId, message_id: ObjectId) -> bool:
    result = await db.messages.update_one(
        {"_id": message_id, "user_id": user_id, "status": "streaming"}, {"$set": {"stop_requested": True}}
    )
    return result.matched_count == 1


async def settle_if_expired(*, db: Db, message_id: ObjectId, now: dt.datetime | None = None) -> bool:
    """A job whose owner stopped renewing its lease (the worker died) ends as `interrupted`, its
    text kept. Atomic: of several workers that see it at once, one settles it."""
    # No lease at all: stored by a release before leases, so no worker can still own it. Two
    # writes rather than one `$or`, which the embedded database runs as a collection scan.
    for lease in ({"$lt": now or utcnow()}, None):
        result = await db.messages.update_one(
            {"_id": message_id, "status": "streaming", "lease_until": lease},
            {"$set": {"status": "interrupted", "error": "interrupted", "worker_id": None, "lease_until": None,
                      "updated_at": utcnow()}},
        )
        if result.modified_count == 1:
            return True
    return False


async def expired_jobs(*, db: Db, limit: int = 100) -> list[MessageDoc]:
    """Jobs whose lease ran out (index `status_lease`)."""
    cursor = db.messages.find(
        {"status": "streaming", "lease_until": {"$lt": utcnow()}},
        {"_id": 1, "conversation_id": 1, "user_id": 1},
    ).limit(limit)
    return cast(list[MessageDoc], await cursor.to_list(length=limit))


async def latest_messages(*, db: Db, user_id: ObjectId, conversation_id: ObjectId, limit: int) -> list[MessageDoc]:
    """The newest `limit` messages, returned oldest first (the newest message of a conversation
    stored before it had a `current_leaf_id`)."""
    docs = await db.messages.find({"conversation_id": conversation_id, "user_id": user_id}, _NO_KEYS).sort(
        _NEWEST_FIRST).limit(limit).to_list(length=limit)
    return cast(list[MessageDoc], docs[::-1])


async def count_recent_user_messages(
    *, db: Db, user_id: ObjectId, since: dt.datetime, until: dt.datetime | None = None,
) -> int:
    """Index `user_role_created`: bounded by the window, not by the user's history. `until`: the
    time of a message being stored at the same moment, which must not count against itself (a
    range, not `_id: {$ne}`: the embedded database uses an index only for the fields it holds)."""
    window: dict[str, Any] = {"$gt": since} if until is None else {"$gt": since, "$lt": until}
    return await db.messages.count_documents({"user_id": user_id, "role": "user", "created_at": window})


async def delete_messages(*, db: Db, user_id: ObjectId, message_ids: list[ObjectId]) -> None:
    """Take back a pair stored for an answer that was then refused (rate limit, unknown image), or
    delete a subtree of the conversation tree with the feedback on it.

    The ids come from this owner's own reads (the pair just built, `tree_nodes` of the owner's
    conversation): the filter is `_id` alone, a point lookup per id on the embedded database,
    which scans for `_id` with any other field. Feedback goes one rating at a time: an `$in` on
    index `message_user_unique` is a scan there too, and a subtree is a handful of messages."""
    await db.messages.delete_many({"_id": {"$in": message_ids}})
    await asyncio.gather(*(db.feedback.delete_one({"message_id": i, "user_id": user_id}) for i in message_ids))


async def tree_nodes(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> list[dict[str, Any]]:
    """Every message's id, parent and time (no text): the whole tree in one read of index
    `conversation_user_created`, walked in memory by backend/db/tree.py."""
    cursor = db.messages.find({"conversation_id": conversation_id, "user_id": user_id},
                              {"_id": 1, "parent_id": 1, "created_at": 1, "status": 1})
    return await cursor.to_list(length=None)


async def get_messages(*, db: Db, user_id: ObjectId, message_ids: Sequence[ObjectId]) -> list[MessageDoc]:
    """These messages, in the order of `message_ids` (a branch's path)."""
    # By `_id` alone (the embedded database plans an index only when it holds every filtered field);
    # the owner is checked here.
    docs = await db.messages.find({"_id": {"$in": list(message_ids)}}, _NO_KEYS).to_list(length=None)
    by_id = {d["_id"]: d for d in docs if d["user_id"] == user_id}
    return cast(list[MessageDoc], [by_id[i] for i in message_ids if i in by_id])


async def siblings_of(*, db: Db, message: MessageDoc) -> list[dict[str, Any]]:
    """The message and its siblings (ids and times), by index `conversation_parent`."""
    cursor = db.messages.find({"conversation_id": message["conversation_id"], "user_id": message["user_id"],
                               "parent_id": message.get("parent_id")}, {"_id": 1, "parent_id": 1, "created_at": 1})
    return await cursor.to_list(length=None)


async def has_children(*, db: Db, message: MessageDoc) -> bool:
    found = await db.messages.find_one({"conversation_id": message["conversation_id"],
                                        "user_id": message["user_id"], "parent_id": message["_id"]}, {"_id": 1})
    return found is not None


async def count_messages(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> int:
    return await db.messages.count_documents({"conversation_id": conversation_id, "user_id": user_id})


async def upsert_feedback(
    *, db: Db, message: MessageDoc, rating: int, comment: str | None,
) -> None:
    now = utcnow()
    await db.feedback.update_one(
        {"message_id": message["_id"], "user_id": message["user_id"]},
        {"$set": {"rating": rating, "comment": comment, "updated_at": now,
                  "conversation_id": message["conversation_id"], "content": message["content"]},
         "$setOnInsert": {"created_at": now}},
        upsert=True,
    )
    await set_fields(db=db, user_id=message["user_id"], message_id=message["_id"],
                     changes={"feedback": {"rating": rating, "comment": comment}})
