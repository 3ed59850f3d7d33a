"""Conversation use cases besides chatting: list and search, rename, read the messages, export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from bson import ObjectId

from backend.chat.export import conversation_markdown, download_headers
from backend.core.clock import as_utc, utcnow
from backend.core.errors import AppError
from backend.core.text import search_text
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.cursor import InvalidCursor, decode_cursor, encode_cursor
from backend.db.ids import parse_id
from backend.db.models import ConversationDoc, MessageDoc
from backend.db.tree import Siblings, Tree
from backend.services.chat import owned_conversation, owned_message

EXPORT_PAGE = 500


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _cursor(value: str | None) -> tuple[dt.datetime, ObjectId] | None:
    try:
        return None if value is None else decode_cursor(value)
    except InvalidCursor:
        raise AppError("invalid_cursor") from None


async def list_conversations(
    db: Db, *, user_id: ObjectId, limit: int, cursor: str | None = None, query: str | None = None,
) -> Page[ConversationDoc]:
    """Newest first; with `query`, only those whose title or messages contain it."""
    docs = await conversations_repo.list_conversations(
        db=db, user_id=user_id, limit=limit + 1, before=_cursor(cursor),
        containing=search_text(query))
    page = docs[:limit]
    more = len(docs) > limit
    return Page(page, encode_cursor(page[-1]["updated_at"], page[-1]["_id"]) if more else None)


async def rename(db: Db, *, user_id: ObjectId, conversation_id: str, title: str, max_chars: int) -> ConversationDoc:
    if len(title) > max_chars:
        raise AppError("validation_error")
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    updated = await conversations_repo.update_conversation(
        db=db, user_id=user_id, conversation_id=conversation["_id"], changes={"title": title})
    if updated is None:
        raise AppError("conversation_not_found")
    return updated


@dataclass(frozen=True)
class Shown:
    """A message of the shown branch with its place among its siblings (for a switcher)."""

    doc: MessageDoc
    siblings: Siblings


async def _tree(db: Db, conversation: ConversationDoc) -> Tree:
    return Tree(await messages_repo.tree_nodes(db=db, user_id=conversation["user_id"],
                                               conversation_id=conversation["_id"]))


async def _shown(db: Db, conversation: ConversationDoc, tree: Tree, ids: list[ObjectId]) -> list[Shown]:
    docs = await messages_repo.get_messages(db=db, user_id=conversation["user_id"], message_ids=ids)
    return [Shown(d, tree.siblings(d["_id"])) for d in docs]


async def list_messages(
    db: Db, *, user_id: ObjectId, conversation_id: str, limit: int, cursor: str | None = None,
) -> Page[Shown]:
    """The shown branch, oldest first; the cursor continues after the last message of the
    previous page (a branch's messages are in time order: a reply is newer than what it answers)."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    tree = await _tree(db, conversation)
    ids = tree.path(tree.shown_leaf(conversation.get("current_leaf_id")))
    after = _cursor(cursor)
    if after is not None:
        at, last_id = as_utc(after[0]), after[1]
        ids = [i for i in ids if (tree.nodes[i].created_at, i) > (at, last_id)]
    page = await _shown(db, conversation, tree, ids[:limit])
    more = len(ids) > limit and bool(page)
    return Page(page, encode_cursor(page[-1].doc["created_at"], page[-1].doc["_id"]) if more else None)


async def recent_messages(db: Db, *, user_id: ObjectId, conversation: ConversationDoc, limit: int) -> list[Shown]:
    """The newest `limit` messages of the shown branch (the chat page)."""
    tree = await _tree(db, conversation)
    ids = tree.path(tree.shown_leaf(conversation.get("current_leaf_id")))
    return await _shown(db, conversation, tree, ids[-limit:])


async def show_branch(
    db: Db, *, user_id: ObjectId, message_id: str, conversation_id: str | None = None,
) -> ConversationDoc:
    """Show the branch through a message: the conversation's leaf becomes the newest leaf under it
    (descending through the newest child), and stays so until another answer or switch."""
    message = await owned_message(db, user_id=user_id, message_id=message_id)
    conversation = await owned_conversation(db, user_id=user_id,
                                            conversation_id=conversation_id or message["conversation_id"])
    if message["conversation_id"] != conversation["_id"]:
        raise AppError("message_not_found")
    leaf = (await _tree(db, conversation)).newest_leaf(message["_id"])
    await conversations_repo.set_leaf(db=db, user_id=user_id, conversation_id=conversation["_id"], leaf_id=leaf)
    conversation["current_leaf_id"] = leaf
    return conversation


async def reveal_message(db: Db, *, user_id: ObjectId, conversation_id: str, message_id: str) -> None:
    """A link to one message (a search hit): its branch is shown, unless it already is."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    tree = await _tree(db, conversation)
    message = parse_id(message_id)
    if message is None or message not in tree:
        raise AppError("message_not_found")
    if message not in tree.path(tree.shown_leaf(conversation.get("current_leaf_id"))):
        await conversations_repo.set_leaf(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                          leaf_id=tree.newest_leaf(message))


async def message_with_siblings(db: Db, *, user_id: ObjectId, message_id: str) -> Shown:
    message = await owned_message(db, user_id=user_id, message_id=message_id)
    tree = Tree(await messages_repo.siblings_of(db=db, message=message))
    return Shown(message, tree.siblings(message["_id"]))


async def export_markdown(
    db: Db, *, user_id: ObjectId, conversation_id: str, locale: str,
) -> tuple[str, dict[str, str]]:
    """The shown branch as Markdown, and the download headers named after its title."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    tree = await _tree(db, conversation)
    docs: list[MessageDoc] = []
    ids = tree.path(tree.shown_leaf(conversation.get("current_leaf_id")))
    for start in range(0, len(ids), EXPORT_PAGE):
        docs += await messages_repo.get_messages(db=db, user_id=user_id, message_ids=ids[start:start + EXPORT_PAGE])
    text = conversation_markdown(conversation, docs, locale, utcnow())
    return text, download_headers(conversation["title"])
