"""/api/v1/admin: users with their usage, disable/enable, per-user quotas, the audit trail and the
model server's state. Admins only: everyone else gets 404, as if these routes did not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.http.deps import AdminAuth, ChatDep, DbDep
from backend.schemas.admin import AdminUser, AdminUserPage, AuditEntry, ModelState, QuotaUpdate
from backend.schemas.common import error_responses
from backend.services import admin

router = APIRouter(prefix="/admin", tags=["admin"], responses=error_responses(404))


@router.get("/users", response_model=AdminUserPage, responses=error_responses(422))
async def list_users(
    auth: AdminAuth, db: DbDep, cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=admin.PAGE_LIMIT)] = 50,
) -> AdminUserPage:
    """Every account, oldest first, with today's and this month's usage and its own quotas."""
    return await admin.list_users(db, cursor=cursor, limit=limit)


@router.post("/users/{user_id}/disable", response_model=AdminUser, responses=error_responses(409))
async def disable_user(user_id: str, auth: AdminAuth, db: DbDep) -> AdminUser:
    """The account's sessions and API tokens stop at once; an admin cannot disable themselves (409)."""
    return await admin.set_disabled(db, actor=auth.user, user_id=user_id, disabled=True)


@router.post("/users/{user_id}/enable", response_model=AdminUser)
async def enable_user(user_id: str, auth: AdminAuth, db: DbDep) -> AdminUser:
    """API tokens work again; browser sessions need a new sign-in."""
    return await admin.set_disabled(db, actor=auth.user, user_id=user_id, disabled=False)


@router.put("/users/{user_id}/quota", response_model=AdminUser, responses=error_responses(422))
async def set_quota(user_id: str, body: QuotaUpdate, auth: AdminAuth, db: DbDep) -> AdminUser:
    """The user's own daily limits (null: the default setting; 0: unlimited)."""
    return await admin.set_quota(db, actor=auth.user, user_id=user_id, quota=body)


@router.get("/audit", response_model=list[AuditEntry])
async def audit_log(auth: AdminAuth, db: DbDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[AuditEntry]:
    """Admin actions, newest first."""
    return await admin.audit_log(db, limit=limit)


@router.get("/model", response_model=ModelState)
async def model_state(auth: AdminAuth, chat: ChatDep) -> ModelState:
    """The model server's /info, queue depth, requests running and recent tokens/s (its /metrics)."""
    return await admin.model_state(chat.model)
