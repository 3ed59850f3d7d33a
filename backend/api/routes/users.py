"""/api/v1/users/me: profile, password, and deleting the account."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from backend.http import cookies
from backend.http.deps import CurrentAuth, CurrentUser, DbDep, SettingsDep
from backend.schemas.common import error_responses
from backend.schemas.usage import UsagePublic
from backend.schemas.users import AccountDeletion, PasswordChange, UserPublic, UserUpdate
from backend.services import account, auth, usage

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.from_doc(user)


@router.get("/me/usage", response_model=UsagePublic, responses=error_responses(401))
async def read_my_usage(user: CurrentUser, db: DbDep, settings: SettingsDep) -> UsagePublic:
    """Messages and tokens per UTC day for the last 30 days, this month's totals, and the daily
    quota with what is used today and when it resets (the next UTC midnight)."""
    return await usage.report(settings, db, user=user)


@router.patch("/me", response_model=UserPublic, responses=error_responses(401, 403, 422))
async def update_me(body: UserUpdate, user: CurrentUser, db: DbDep, settings: SettingsDep) -> UserPublic:
    changes = body.model_dump(exclude_none=True)
    return UserPublic.from_doc(await account.update_profile(db, user=user, changes=changes, settings=settings))


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


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(400, 401, 422))
async def delete_me(body: AccountDeletion, user: CurrentUser, db: DbDep, settings: SettingsDep) -> Response:
    """Delete the account with its conversations, messages, images, feedback and tokens; needs the
    password. It cannot be undone: export what you want to keep first."""
    await auth.delete_account(db=db, user=user, password=body.password)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookies.clear_session_cookies(response, settings)  # a browser session ends with it
    return response
