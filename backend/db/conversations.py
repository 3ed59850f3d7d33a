"""Repository: conversations. Every query is scoped to its owner (`user_id`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from bson import ObjectId
from pymongo import ReturnDocument

from backend.core.clock import as_utc, utcnow
from backend.db.client import Db
from backend.db.models import ConversationDoc
from backend.db.search_keys import keys as search_keys
from backend.db.search_keys import lookup_key, normalise
from backend.db.windows import Window, newest_first

_NEWEST_FIRST = [("updated_at", -1), ("_id", -1)]
_NO_KEYS = {"title_keys": 0}  # the search index's keys stay in the database: never read back
# A search reads at most this many matching messages per key and window to find their conversations.
SEARCH_MESSAGE_HITS = 2000


def new_conversation(*, user_id: ObjectId, title: str, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored shape of a new conversation (`title_keys`: the search index of its title)."""
    now = utcnow()
    return {"_id": ObjectId(), "user_id": user_id, "title": title, "title_keys": search_keys(title),
            "created_at": now, "updated_at": now, "model": model, "message_count": 0, "current_leaf_id": None}


async def create_conversation(
    *, db: Db, user_id: ObjectId, title: str, model: dict[str, Any] | None = None
) -> ConversationDoc:
    doc = new_conversation(user_id=user_id, title=title, model=model)
    await db.conversations.insert_one(doc)
    return cast(ConversationDoc, doc)


async def get_conversation(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> ConversationDoc | None:
    return cast(ConversationDoc | None, await db.conversations.find_one({"_id": conversation_id, "user_id": user_id},
                                                                            _NO_KEYS))


async def list_conversations(
    *, db: Db, user_id: ObjectId, limit: int, before: tuple[dt.datetime, ObjectId] | None = None,
    containing: str | None = None,
) -> list[ConversationDoc]:
    """Newest first; `before` is the (updated_at, _id) of the last item of the previous page.

    With `containing`, only conversations whose title or one of whose messages contains that text
    (ignoring case; matched literally, never as a pattern). Read in time windows (backend/db/windows.py):
    what a page costs follows the user's recent activity, not the size of their history.
    """
    if containing:
        return await _search(db, user_id, containing, limit=limit, before=before)
    page: list[ConversationDoc] = []

    async def read(window: Window) -> int:
        query = {"user_id": user_id, **_dated("updated_at", window, inclusive_until=before is not None)}
        docs = await db.conversations.find(query, _NO_KEYS).sort(_NEWEST_FIRST).to_list(length=None)
        kept = [d for d in docs if _before(d, before)]
        page.extend(cast(list[ConversationDoc], kept))
        return len(kept)

    await newest_first(read, until=None if before is None else before[0], start=_start(before), wanted=limit)
    return page[:limit]


def _start(before: tuple[dt.datetime, ObjectId] | None) -> dt.datetime:
    return utcnow() if before is None else as_utc(before[0])


def _before(doc: dict[str, Any], before: tuple[dt.datetime, ObjectId] | None) -> bool:
    return before is None or (as_utc(doc["updated_at"]), doc["_id"]) < (as_utc(before[0]), before[1])


def _dated(field: str, window: Window, *, inclusive_until: bool = False,
           key: Callable[[dt.datetime], Any] = lambda at: at) -> dict[str, Any]:
    """The window as a range on `field` (`key`: a date as that field's value; `inclusive_until`: a
    page's own `before` bound, whose ties on the date the `_id` decides)."""
    bounds: dict[str, Any] = {}
    if window.since is not None:
        bounds["$gte"] = key(window.since)
    if window.until is not None:
        bounds["$lte" if inclusive_until else "$lt"] = key(window.until)
    return {field: bounds} if bounds else {}


def _ids_dated(window: Window) -> dict[str, Any]:
    """The window as a range on `_id`: an ObjectId starts with its creation second."""
    return _dated("_id", window, key=ObjectId.from_datetime)


async def _search(
    db: Db, user_id: ObjectId, text: str, *, limit: int, before: tuple[dt.datetime, ObjectId] | None,
) -> list[ConversationDoc]:
    """Search by the bigram index (backend/db/search_keys.py), window by window back in time: in each,
    candidates by key equality (indexes `user_search_keys` on message `_id`, `user_title_keys_updated`),
    the exact substring check, then the conversations found. Every query is an index range or an
    `_id` lookup, and bounded by its window."""
    needle = normalise(text)
    key = lookup_key(needle)
    if key is None:
        return []
    found: dict[ObjectId, ConversationDoc] = {}

    async def read(window: Window) -> int:
        hits = await _conversations_containing(db, user_id, needle, key, window)
        new = [cid for cid in hits if cid not in found]
        if not new:
            return 0
        docs = await db.conversations.find({"_id": {"$in": new}}, _NO_KEYS).to_list(length=None)
        kept = [d for d in docs if d["user_id"] == user_id and _before(d, before)]
        for doc in kept:  # the page links to the message found (it may be on a branch not shown)
            doc["search_hit_id"] = hits[doc["_id"]]
            found[doc["_id"]] = cast(ConversationDoc, doc)
        return len(kept)

    # A message is never newer than its conversation's `updated_at`: the windows may start at `before`.
    until = None if before is None else as_utc(before[0]).replace(microsecond=0) + dt.timedelta(seconds=1)
    await newest_first(read, until=until, start=_start(before), wanted=limit)
    docs = sorted(found.values(), key=lambda d: (as_utc(d["updated_at"]), d["_id"]), reverse=True)
    return docs[:limit]


async def _conversations_containing(
    db: Db, user_id: ObjectId, needle: str, key: str, window: Window,
) -> dict[ObjectId, ObjectId | None]:
    """Conversation id → a message dated in the window that contains the text (None when the title,
    dated by the conversation's `updated_at`, does). One key is looked up, the most selective-looking,
    and the text checked on what it finds: the embedded database reads and re-matches every hit of
    every key looked up, so intersecting the hits of three keys cost more than checking one's."""
    query = {"user_id": user_id, "search_keys": key, **_ids_dated(window)}
    messages_cursor = db.messages.find(query, {"conversation_id": 1, "content": 1}).limit(SEARCH_MESSAGE_HITS)
    title_query = {"user_id": user_id, "title_keys": key, **_dated("updated_at", window)}
    titles_cursor = db.conversations.find(title_query, {"title": 1})
    messages, titles = await asyncio.gather(messages_cursor.to_list(length=SEARCH_MESSAGE_HITS),
                                            titles_cursor.to_list(length=None))
    found: dict[ObjectId, ObjectId | None] = {d["_id"]: None for d in titles if needle in normalise(d["title"])}
    for m in messages:  # newest first (the index ends in _id descending): a conversation's newest hit is kept
        if needle in normalise(m["content"]):
            found.setdefault(m["conversation_id"], m["_id"])
    return found


async def update_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, changes: dict[str, Any]
) -> ConversationDoc | None:
    """Rename (the page and the API need the updated document back)."""
    allowed = {k: v for k, v in changes.items() if k in {"title", "model"}}
    if "title" in allowed:
        allowed["title_keys"] = search_keys(allowed["title"])
    return await db.conversations.find_one_and_update(  # type: ignore[return-value]  # TypedDict of the stored dict
        {"_id": conversation_id, "user_id": user_id},
        {"$set": {**allowed, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )


@dataclass(frozen=True)
class Shown:
    """What a new answer changes in its conversation, written with the claim: the branch shown
    (ending at the answer), the message count, the list order, and the title of a new conversation."""

    leaf_id: ObjectId
    added_messages: int
    title: str | None = None


async def claim(*, db: Db, user_id: ObjectId, conversation_id: ObjectId, message_id: ObjectId,
                shown: Shown | None = None) -> bool:
    """Reserve the conversation for one new answer (atomic across workers); False if one is running.
    With `shown`, the conversation shows the answer in the same write (one write where there were
    two before the first token: each rewrites the conversation's index entries)."""
    update: dict[str, Any] = {"$set": {"active_message_id": message_id}}
    if shown is not None:
        update["$set"].update(updated_at=utcnow(), current_leaf_id=shown.leaf_id)
        if shown.title is not None:
            update["$set"].update(title=shown.title, title_keys=search_keys(shown.title))
        update["$inc"] = {"message_count": shown.added_messages}
    result = await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id, "active_message_id": None}, update)
    return result.modified_count == 1


async def release(*, db: Db, conversation_id: ObjectId, message_id: ObjectId,
                  undo: tuple[ConversationDoc, Shown] | None = None) -> None:
    """Give the conversation back; with `undo` (an answer refused before it started: its messages
    were taken back) also what the claim showed, as the conversation was before it."""
    update: dict[str, Any] = {"$set": {"active_message_id": None}}
    if undo is not None:
        before, shown = undo
        update["$set"].update(updated_at=before["updated_at"], current_leaf_id=before.get("current_leaf_id"))
        if shown.title is not None:
            update["$set"].update(title=before["title"], title_keys=search_keys(before["title"]))
        update["$inc"] = {"message_count": -shown.added_messages}
    await db.conversations.update_one({"_id": conversation_id, "active_message_id": message_id}, update)


async def touch_conversation(
    *, db: Db, user_id: ObjectId, conversation_id: ObjectId, added_messages: int = 0, title: str | None = None,
    leaf_id: ObjectId | None = None,
) -> None:
    """Move a conversation to the top of the list (new message) and count its messages; with
    `title`, rename it in the same write (a new conversation titled from its first message); with
    `leaf_id`, show the branch that ends there (a new answer)."""
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if title is not None:
        changes.update(title=title, title_keys=search_keys(title))
    if leaf_id is not None:
        changes["current_leaf_id"] = leaf_id
    await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id}, {"$set": changes, "$inc": {"message_count": added_messages}},
    )


async def set_leaf(*, db: Db, user_id: ObjectId, conversation_id: ObjectId, leaf_id: ObjectId | None,
                   removed_messages: int = 0) -> None:
    """Show another branch (switch, or a deleted subtree), without moving it in the list."""
    await db.conversations.update_one(
        {"_id": conversation_id, "user_id": user_id},
        {"$set": {"current_leaf_id": leaf_id}, "$inc": {"message_count": -removed_messages}},
    )


async def delete_conversation(*, db: Db, user_id: ObjectId, conversation_id: ObjectId) -> bool:
    """Delete a conversation with its messages, images, feedback and share links; False if not the owner's."""
    result = await db.conversations.delete_one({"_id": conversation_id, "user_id": user_id})
    if result.deleted_count != 1:
        return False
    scope = {"conversation_id": conversation_id, "user_id": user_id}
    await db.messages.delete_many(scope)
    await db.images.delete_many(scope)
    await db.feedback.delete_many(scope)
    await db.shares.delete_many(scope)  # its links die with it (their images are gone anyway)
    return True


async def delete_user_conversations(*, db: Db, user_id: ObjectId) -> None:
    for name in ("conversations", "messages", "images", "feedback", "shares"):
        await db[name].delete_many({"user_id": user_id})
