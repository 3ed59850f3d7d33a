"""Glue between chat services and FastAPI routes: dependencies and error translation."""

from __future__ import annotations

from typing import Annotated, Any

from bson import ObjectId
from fastapi import Depends, Request

from backend.chat.errors import ChatError
from backend.chat.service import ChatServices
from backend.core.errors import ApiError, request_locale
from backend.db import conversations as conversations_repo
from backend.db.client import Db
from backend.db.ids import parse_id


def get_chat(request: Request) -> ChatServices:
    return request.app.state.chat  # type: ignore[no-any-return]


ChatDep = Annotated[ChatServices, Depends(get_chat)]


def api_error(exc: ChatError) -> ApiError:
    return ApiError(exc.status_code, exc.code)


def object_id(value: str, code: str = "not_found") -> ObjectId:
    parsed = parse_id(value)
    if parsed is None:
        raise ApiError(404, code)
    return parsed


async def owned_conversation(db: Db, user: dict[str, Any], conversation_id: str) -> dict[str, Any]:
    conversation = await conversations_repo.get_conversation(
        db=db, user_id=user["_id"], conversation_id=object_id(conversation_id, "conversation_not_found")
    )
    if conversation is None:
        raise ApiError(404, "conversation_not_found")
    return conversation


def locale_of(request: Request) -> str:
    return request_locale(request)
