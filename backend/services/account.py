"""Account use cases besides signing in (`backend.services.auth`): profile and personal API tokens."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from backend.core.errors import AppError
from backend.db import api_tokens, users
from backend.db.client import Db
from backend.db.ids import parse_id
from kovr.settings import Settings


async def update_profile(
    db: Db, *, user: dict[str, Any], changes: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    if len(changes.get("display_name", "")) > settings.max_display_name_chars:
        raise AppError("validation_error")
    if not changes:
        return user
    updated = await users.update_user(db=db, user_id=user["_id"], changes=changes)
    if updated is None:
        raise AppError("user_not_found")
    return updated


async def list_tokens(db: Db, *, user_id: ObjectId) -> list[dict[str, Any]]:
    return await api_tokens.list_api_tokens(db=db, user_id=user_id)


async def revoke_token(db: Db, *, user_id: ObjectId, token_id: str) -> None:
    oid = parse_id(token_id)
    if oid is None or not await api_tokens.revoke_api_token(db=db, user_id=user_id, token_id=oid):
        raise AppError("token_not_found")
