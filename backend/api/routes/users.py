"""/api/v1/users/me: profile and password."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from backend.api.deps import CurrentAuth, CurrentUser, DbDep, SettingsDep
from backend.core.errors import ApiError
from backend.db import users
from backend.schemas.common import error_responses
from backend.schemas.users import PasswordChange, UserPublic, UserUpdate
from backend.services import auth

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.from_doc(user)


@router.patch("/me", response_model=UserPublic, responses=error_responses(401, 403, 422))
async def update_me(body: UserUpdate, user: CurrentUser, db: DbDep, settings: SettingsDep) -> UserPublic:
    changes = body.model_dump(exclude_none=True)
    if len(changes.get("display_name", "")) > settings.max_display_name_chars:
        raise ApiError(422, "validation_error")
    updated = await users.update_user(db=db, user_id=user["_id"], changes=changes) if changes else user
    if updated is None:
        raise ApiError(404, "user_not_found")
    return UserPublic.from_doc(updated)


@router.post(
    "/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(400, 401, 403, 422)
)
async def change_password(body: PasswordChange, ctx: CurrentAuth, db: DbDep) -> Response:
    """Needs the current password; ends every other sign-in (this one stays)."""
    await auth.change_password(
        db=db,
        user=ctx.user,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_family=ctx.family_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
