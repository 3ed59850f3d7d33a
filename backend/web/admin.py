"""The admin page (/admin): users with usage, disable/enable and quotas (htmx, CSRF like every
page form), the model server panel and the audit trail. Thin over `backend.services.admin`;
anyone but an admin gets 404, as from the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from backend.core.errors import AppError
from backend.http.deps import ChatDep, DbDep, OptionalUser
from backend.schemas.admin import AdminUser, QuotaUpdate
from backend.services import admin
from backend.web.common import user_view
from backend.web.templating import render

router = APIRouter(include_in_schema=False, prefix="/admin")
Limit = Annotated[str, Form(max_length=12)]


def _admin(user: dict[str, Any] | None) -> dict[str, Any]:
    if not admin.is_admin(user):
        raise AppError("not_found")
    assert user is not None
    return user


def _row(request: Request, user: dict[str, Any], row: AdminUser) -> Response:
    # Tells the audit panel to reload itself: the action just written belongs there.
    response = render(request, "partials/admin_user_row.html", row=row, me=str(user["_id"]))
    response.headers["HX-Trigger"] = "audit-changed"
    return response


@router.get("")
async def admin_page(request: Request, db: DbDep, user: OptionalUser,
                     cursor: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    me = _admin(user)
    page = await admin.list_users(db, cursor=cursor, limit=admin.PAGE_LIMIT)
    return render(request, "admin.html", user=user_view(me), me=str(me["_id"]), page=page,
                  audit=await admin.audit_log(db))


@router.get("/model")
async def model_panel(request: Request, chat: ChatDep, user: OptionalUser) -> Response:
    _admin(user)
    return render(request, "partials/admin_model.html", model=await admin.model_state(chat.model))


@router.get("/audit")
async def audit_panel(request: Request, db: DbDep, user: OptionalUser) -> Response:
    _admin(user)
    return render(request, "partials/admin_audit.html", audit=await admin.audit_log(db))


@router.post("/users/{user_id}/disable")
async def disable(request: Request, user_id: str, db: DbDep, user: OptionalUser) -> Response:
    me = _admin(user)
    return _row(request, me, await admin.set_disabled(db, actor=me, user_id=user_id, disabled=True))


@router.post("/users/{user_id}/enable")
async def enable(request: Request, user_id: str, db: DbDep, user: OptionalUser) -> Response:
    me = _admin(user)
    return _row(request, me, await admin.set_disabled(db, actor=me, user_id=user_id, disabled=False))


@router.post("/users/{user_id}/quota")
async def quota(request: Request, user_id: str, db: DbDep, user: OptionalUser,
                messages_per_day: Limit = "", tokens_per_day: Limit = "") -> Response:
    """Empty fields put the default back."""
    me = _admin(user)
    try:
        body = QuotaUpdate.model_validate({"messages_per_day": messages_per_day.strip() or None,
                                           "tokens_per_day": tokens_per_day.strip() or None})
    except ValidationError:
        raise AppError("validation_error") from None
    return _row(request, me, await admin.set_quota(db, actor=me, user_id=user_id, quota=body))
