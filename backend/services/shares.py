"""Share links: a read-only, public snapshot of the branch of a conversation its owner sees.

Snapshot, not live: the owner keeps chatting, editing and branching after sharing, and a link
that was given out must show exactly what was shared — never a later message, never another
branch. The snapshot copies only role, text, time and image ids of each message; the public page
reads nothing else (no email, no model parameters, no feedback).
"""

from __future__ import annotations

import secrets

from bson import ObjectId

from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import images as images_repo
from backend.db import shares as shares_repo
from backend.db.client import Db
from backend.db.models import ConversationDoc, ImageDoc, MessageDoc, SharedMessage, ShareDoc
from backend.services import conversations as conversations_service
from backend.services.chat import owned_conversation

SHARE_ID_BYTES = 18  # 24 URL-safe characters, 144 random bits: not guessable, not enumerable
MAX_SHARED_MESSAGES = 2000
MAX_SHARED_CHARS = 4_000_000  # the snapshot is one document: well under MongoDB's 16 MiB
LIST_LIMIT = 200


async def shown_branch(db: Db, conversation: ConversationDoc) -> list[MessageDoc]:
    """The messages the owner sees, oldest first: the path root → the shown leaf of the
    conversation tree. The one place that decides what a share copies."""
    shown = await conversations_service.recent_messages(
        db, user_id=conversation["user_id"], conversation=conversation, limit=MAX_SHARED_MESSAGES + 1)
    if len(shown) > MAX_SHARED_MESSAGES:
        raise AppError("share_too_large")
    return [s.doc for s in shown]


def _shareable(doc: MessageDoc) -> bool:
    # An answer still being written, or one that failed with no text, has nothing to show yet.
    return doc["role"] in ("user", "assistant") and doc["status"] != "streaming" and bool(
        doc["content"] or doc.get("image_ids"))


def snapshot(docs: list[MessageDoc]) -> list[SharedMessage]:
    return [SharedMessage(role=d["role"], content=d["content"], created_at=d["created_at"],
                          image_ids=list(d.get("image_ids", []))) for d in docs if _shareable(d)]


async def create_share(db: Db, *, user_id: ObjectId, conversation_id: str) -> ShareDoc:
    """Owner only (anyone else: conversation_not_found). Each call makes a new link of the branch as
    it is now; earlier links keep what they showed."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    messages = snapshot(await shown_branch(db, conversation))
    if sum(len(m["content"]) for m in messages) > MAX_SHARED_CHARS:
        raise AppError("share_too_large")
    doc = ShareDoc(
        _id=secrets.token_urlsafe(SHARE_ID_BYTES), user_id=user_id, conversation_id=conversation["_id"],
        title=conversation["title"], messages=messages,
        image_ids=[i for m in messages for i in m["image_ids"]], created_at=utcnow())
    await shares_repo.insert_share(db=db, doc=doc)
    return doc


async def list_shares(db: Db, *, user_id: ObjectId) -> list[ShareDoc]:
    return await shares_repo.list_shares(db=db, user_id=user_id, limit=LIST_LIMIT)


async def revoke_share(db: Db, *, user_id: ObjectId, share_id: str) -> None:
    """Deleted, not flagged: a revoked link is gone (404) exactly like one that never existed."""
    if len(share_id) > 100 or not await shares_repo.delete_share(db=db, user_id=user_id, share_id=share_id):
        raise AppError("share_not_found")


async def public_share(db: Db, *, share_id: str) -> ShareDoc:
    """Anyone with the id; an unknown or revoked id → share_not_found."""
    doc = None if len(share_id) > 100 else await shares_repo.get_share(db=db, share_id=share_id)
    if doc is None:
        raise AppError("share_not_found")
    return doc


async def shared_image(db: Db, *, share_id: str, image_id: str) -> ImageDoc:
    """An image of a share, only if the snapshot lists it: the share id never opens the owner's
    other images."""
    share = await public_share(db, share_id=share_id)
    wanted = next((i for i in share["image_ids"] if str(i) == image_id), None)
    doc = None if wanted is None else await images_repo.get_image(db=db, user_id=share["user_id"], image_id=wanted)
    if doc is None:
        raise AppError("image_not_found")
    return doc
