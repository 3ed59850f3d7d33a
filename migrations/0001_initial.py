"""The collections and indexes of KoVR's first release.

users, refresh_tokens, api_tokens, conversations, messages, images, feedback, login_attempts.
Index creation is idempotent, so running this twice is harmless.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel([("email", ASC)], unique=True, name="email_unique")],
    "refresh_tokens": [
        IndexModel([("token_hash", ASC)], unique=True, name="token_hash_unique"),
        IndexModel([("family_id", ASC)], name="family"),
        IndexModel([("user_id", ASC)], name="user"),
        IndexModel([("expires_at", ASC)], expireAfterSeconds=0, name="expires_ttl"),
    ],
    "api_tokens": [
        IndexModel([("token_hash", ASC)], unique=True, name="token_hash_unique"),
        IndexModel([("user_id", ASC), ("created_at", DESC)], name="user_created"),
    ],
    "conversations": [
        IndexModel([("user_id", ASC), ("updated_at", DESC), ("_id", DESC)], name="user_updated"),
    ],
    "messages": [
        IndexModel(
            [("conversation_id", ASC), ("created_at", ASC), ("_id", ASC)], name="conversation_created"
        ),
        IndexModel([("user_id", ASC)], name="user"),
    ],
    "images": [
        IndexModel([("user_id", ASC), ("created_at", DESC)], name="user_created"),
        IndexModel([("conversation_id", ASC)], name="conversation"),
        IndexModel([("sha256", ASC)], name="sha256"),
    ],
    "feedback": [
        IndexModel([("message_id", ASC), ("user_id", ASC)], unique=True, name="message_user_unique"),
        IndexModel([("conversation_id", ASC)], name="conversation"),
    ],
    "login_attempts": [
        IndexModel([("key", ASC), ("at", ASC)], name="key_at"),
        IndexModel([("expires_at", ASC)], expireAfterSeconds=0, name="expires_ttl"),
    ],
}


async def up(db: AsyncDatabase[dict[str, Any]]) -> None:
    existing = set(await db.list_collection_names())
    for name, indexes in INDEXES.items():
        if name not in existing:
            await db.create_collection(name)
        await db[name].create_indexes(indexes)
