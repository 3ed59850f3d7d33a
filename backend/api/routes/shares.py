"""/api/v1 share links: create one of a conversation (owner only), list mine, revoke one.

The public page itself (`/s/{id}`) is a page route (backend/web/share.py): it needs no account."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from backend.http.deps import CurrentUser, DbDep, SettingsDep, public_base_url
from backend.schemas.common import error_responses
from backend.schemas.shares import ShareList, SharePublic
from backend.services import shares as shares_service

router = APIRouter(tags=["shares"])


@router.post("/conversations/{conversation_id}/shares", status_code=status.HTTP_201_CREATED,
             response_model=SharePublic, responses=error_responses(401, 404, 413))
async def create_share(conversation_id: str, request: Request, user: CurrentUser, db: DbDep,
                       settings: SettingsDep) -> SharePublic:
    """A read-only link to the conversation as it is now (a snapshot: later messages are not shown)."""
    doc = await shares_service.create_share(db, user_id=user["_id"], conversation_id=conversation_id)
    return SharePublic.from_doc(doc, base_url=public_base_url(request, settings))


@router.get("/shares", response_model=ShareList, responses=error_responses(401))
async def list_shares(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep) -> ShareList:
    """My share links, newest first."""
    base = public_base_url(request, settings)
    docs = await shares_service.list_shares(db, user_id=user["_id"])
    return ShareList(items=[SharePublic.from_doc(d, base_url=base) for d in docs])


@router.delete("/shares/{share_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
async def revoke_share(share_id: str, user: CurrentUser, db: DbDep) -> Response:
    """The link stops working at once (its page and images answer 404)."""
    await shares_service.revoke_share(db, user_id=user["_id"], share_id=share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
