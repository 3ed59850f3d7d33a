"""/api/v1/auth: sign-up, password login (OAuth2 form), refresh, logout, browser session login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from backend.core.text import nfc
from backend.http import cookies
from backend.http.deps import CsrfProtected, DbDep, SettingsDep, client_ip, verify_csrf
from backend.schemas.auth import LogoutRequest, RefreshRequest, TokenPair
from backend.schemas.common import error_responses
from backend.schemas.users import UserCreate, UserPublic
from backend.services import auth
from backend.services.auth import SessionTokens

router = APIRouter(prefix="/auth", tags=["auth"])

FormEmail = Annotated[str, Form(min_length=1, max_length=254)]
FormPassword = Annotated[str, Form(min_length=1, max_length=256)]


def _pair(tokens: SessionTokens) -> TokenPair:
    assert tokens.refresh_token is not None
    return TokenPair(
        access_token=tokens.access_token, refresh_token=tokens.refresh_token, expires_in=tokens.expires_in
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=error_responses(409, 422, 429),
)
async def signup(request: Request, body: UserCreate, db: DbDep, settings: SettingsDep) -> UserPublic:
    """Rate limited per client address (`signup_rate_limit_address` per `signup_rate_window_s`)."""
    user = await auth.signup_from_client(db=db, settings=settings, email=body.email, password=body.password,
                                         display_name=body.display_name, client_ip=client_ip(request))
    return UserPublic.from_doc(user)


@router.post("/token", response_model=TokenPair, responses=error_responses(401, 422, 429))
async def token(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    username: FormEmail,
    password: FormPassword,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenPair:
    """OAuth2 password grant: `username` is the email. Rate limited per account and address."""
    user = await auth.authenticate(
        db=db,
        settings=settings,
        email=str(nfc(username)),
        password=str(nfc(password)),
        client_ip=client_ip(request),
    )
    return _pair(await auth.issue_session_tokens(db=db, settings=settings, user=user, client="api"))


@router.post(
    "/session",
    response_model=UserPublic,
    dependencies=[CsrfProtected],
    responses=error_responses(401, 403, 429),
)
async def browser_login(
    request: Request,
    response: Response,
    db: DbDep,
    settings: SettingsDep,
    username: FormEmail,
    password: FormPassword,
) -> UserPublic:
    """Browser login: the same check as /token, but the tokens go into HttpOnly cookies (needs CSRF)."""
    user = await auth.authenticate(
        db=db,
        settings=settings,
        email=str(nfc(username)),
        password=str(nfc(password)),
        client_ip=client_ip(request),
    )
    tokens = await auth.issue_session_tokens(db=db, settings=settings, user=user, client="browser")
    cookies.set_session_cookies(response, tokens, settings)
    return UserPublic.from_doc(user)


@router.post("/refresh", response_model=TokenPair, responses=error_responses(401, 422))
async def refresh(body: RefreshRequest, db: DbDep, settings: SettingsDep) -> TokenPair:
    """Rotate: the refresh token is spent; using it a second time ends the whole sign-in."""
    _, tokens = await auth.rotate_refresh(db=db, settings=settings, refresh_token=body.refresh_token)
    return _pair(tokens)


async def _logout_body(request: Request) -> LogoutRequest | None:
    """JSON {refresh_token} from programs; browsers post a form (or nothing) and use the cookie."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return LogoutRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(403, 422),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": LogoutRequest.model_json_schema()}},
        }
    },
)
async def logout(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """End a sign-in: the one of the given refresh token, else of the Bearer access token, else of
    the session cookie (with CSRF); the cookies are cleared either way."""
    body = await _logout_body(request)
    token = body.refresh_token if body else None
    bearer = request.headers.get("authorization", "")
    if token is None and bearer.lower().startswith("bearer "):
        await auth.logout_access_token(db=db, settings=settings, token=bearer[7:].strip())
    elif token is None and cookies.read(request, cookies.REFRESH_COOKIE, settings):
        await verify_csrf(request)
        token = (cookies.read(request, cookies.REFRESH_COOKIE, settings) or "")[:512]
    await auth.logout(db=db, refresh_token=token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookies.clear_session_cookies(response, settings)
    return response
