"""FastAPI dependencies: settings, database, the signed-in user, CSRF.

How to use (routes in backend/api/routes/*.py, yours included):

    from backend.http.deps import CurrentUser, DbDep, SettingsDep

    @router.get("/things/{thing_id}")
    async def read_thing(thing_id: str, user: CurrentUser, db: DbDep) -> ThingPublic:
        ...  # user is the stored user document (dict); user["_id"] is an ObjectId

- `CurrentUser` accepts, in this order: `Authorization: Bearer <JWT access token>`,
  `Authorization: Bearer kovr_<personal API token>`, or the browser's `kovr_access` cookie.
  A cookie-authenticated request with an unsafe method (POST/PUT/PATCH/DELETE) must also carry
  the CSRF token and come from this site's Origin, else 403 csrf_failed; Bearer requests need
  neither (no ambient credentials).
- `CurrentAuth` is the same with how the user signed in (`auth.via`: "jwt" | "api_token" | "cookie").
- `OptionalUser` is the user or None (for pages that show a login link instead of a 401).
- `AdminAuth` is an admin's `CurrentAuth`; everyone else gets 404 (the admin routes do not exist for them).
- `CsrfProtected` checks the CSRF token without requiring a sign-in (login and sign-up forms).

CSRF token for pages: the session middleware derives it from the browser's session (an HMAC of
the sign-in, see backend/http/cookies.py), puts it in `request.state.csrf_token` (also
`csrf_token(request)` below) and in the readable `kovr_csrf` cookie. Send it back either as
the `X-CSRF-Token` header (htmx: `<body hx-headers='{"X-CSRF-Token": "{{ csrf_token }}"}'>`) or
as a `csrf_token` field of an ordinary form post.

Browser sign-in from a page route: `services.auth.authenticate(...)`, then
`tokens = await services.auth.issue_session_tokens(...)` and `cookies.set_session_cookies(response,
tokens, settings)`. An expired access cookie is renewed by the middleware from the refresh cookie.

Errors: raise `backend.core.errors.AppError("snake_code")`; add the code's Korean and English
texts to `backend.core.i18n.TEXT` and its HTTP status to `backend.core.errors.STATUS`; the one
handler turns it into JSON for the API and into a toast text for an htmx page call.
Readiness: add `async () -> bool` checks to `app.state.readiness_checks["name"]` (GET /readyz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer

from backend.core.errors import AppError
from backend.core.i18n import request_locale
from backend.core.security import API_TOKEN_PREFIX, same_secret
from backend.db.client import Db
from backend.http import cookies
from backend.services import admin, auth
from backend.services.chat import ChatServices
from kovr.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_db(request: Request) -> Db:
    return cast(Db, request.app.state.db)


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Db, Depends(get_db)]


def public_base_url(request: Request, settings: Settings) -> str:
    """Where this site is reached, for links given out (share links): KOVR_PUBLIC_URL when set
    (behind a proxy the request's own host may be an internal one), else the request's."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


def client_ip(request: Request) -> str | None:
    """The client's address for rate limits: X-Forwarded-For's when a trusted proxy sent it
    (uvicorn's proxy headers, `forwarded_allow_ips`), else the connection's."""
    return request.client.host if request.client else None


@dataclass(frozen=True)
class AuthContext:
    user: dict[str, Any]
    via: Literal["jwt", "api_token", "cookie"]
    family_id: str | None = None  # the sign-in (refresh-token family) of a JWT or cookie session


def csrf_token(request: Request) -> str:
    """The browser's CSRF token, to render into forms and htmx headers."""
    return str(getattr(request.state, "csrf_token", ""))


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(cookies.CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette caches the parsed form; the route sees it too
        value = form.get(cookies.CSRF_FORM_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def verify_origin(request: Request) -> None:
    """A browser's write must come from this site: a foreign `Origin` (or, without one, `Referer`)
    is refused. Browsers send Origin with every cross-site POST/PUT/PATCH/DELETE, so a forged
    request always carries one; a client that sends neither is no browser and still needs the token."""
    settings: Settings = request.app.state.settings
    sent = request.headers.get("origin")
    if sent is None:
        referer = request.headers.get("referer")
        if not referer:
            return
        sent = cookies.origin_of(referer)
    if cookies.origin_of(sent) not in cookies.allowed_origins(request, settings):
        raise AppError("csrf_failed", f"foreign origin {sent[:100]!r}")


async def verify_csrf(request: Request) -> None:
    """A browser's write: from this site, carrying the CSRF token of its session (never the cookie's
    own value: the middleware derives it from the sign-in, see backend/http/cookies.py)."""
    if request.method in SAFE_METHODS:
        return
    verify_origin(request)
    expected = csrf_token(request)
    submitted = await _submitted_csrf(request)
    if not expected or not submitted or not same_secret(expected, submitted):
        raise AppError("csrf_failed")


CsrfProtected = Depends(verify_csrf)


async def _authenticate(request: Request, db: Db, settings: Settings) -> AuthContext | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 4096:
            raise AppError("invalid_token", headers=_BEARER_CHALLENGE)
        if token.startswith(API_TOKEN_PREFIX):
            return AuthContext(await auth.user_from_api_token(db=db, token=token), "api_token")
        user, family = await auth.session_from_access_token(db=db, settings=settings, token=token)
        return AuthContext(user, "jwt", family)
    cookie = getattr(request.state, "session_access_token", None) or cookies.read(
        request, cookies.ACCESS_COOKIE, settings
    )
    if not isinstance(cookie, str) or not cookie:
        return None
    try:
        user, family = await auth.session_from_access_token(db=db, settings=settings, token=cookie)
    except AppError:
        return None  # a stale cookie is simply "not signed in"
    await verify_csrf(request)
    return AuthContext(user, "cookie", family)


def _remember(request: Request, ctx: AuthContext) -> None:
    request.state.user_id = str(ctx.user["_id"])  # for the request log line
    request.state.auth_via = ctx.via


# For the OpenAPI schema only (/docs "Authorize": password login or a pasted JWT / kovr_ token);
# the header itself is read and checked in _authenticate.
_password_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_bearer_scheme = HTTPBearer(auto_error=False, description="JWT access token or personal API token (kovr_...)")


async def get_auth(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    _password: Annotated[str | None, Depends(_password_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> AuthContext:
    ctx = await _authenticate(request, db, settings)
    if ctx is None:
        raise AppError("not_authenticated", headers=_BEARER_CHALLENGE)
    _remember(request, ctx)
    return ctx


async def get_current_user(ctx: Annotated[AuthContext, Depends(get_auth)]) -> dict[str, Any]:
    return ctx.user


async def get_optional_user(request: Request, db: DbDep, settings: SettingsDep) -> dict[str, Any] | None:
    """For pages: the user or None. Does not check CSRF for GETs; unsafe methods still need it."""
    try:
        ctx = await _authenticate(request, db, settings)
    except AppError:
        return None
    if ctx is not None:
        _remember(request, ctx)
    return None if ctx is None else ctx.user


async def get_admin(request: Request, db: DbDep, settings: SettingsDep) -> AuthContext:
    """An admin, or 404 to everyone else (signed in or not, token invalid or not): the admin
    routes do not exist for them."""
    try:
        ctx = await _authenticate(request, db, settings)
    except AppError:
        ctx = None
    if ctx is None or not admin.is_admin(ctx.user):
        raise AppError("not_found")
    _remember(request, ctx)
    return ctx


def get_chat(request: Request) -> ChatServices:
    return cast(ChatServices, request.app.state.chat)


def get_locale(request: Request) -> str:
    return request_locale(request)


CurrentAuth = Annotated[AuthContext, Depends(get_auth)]
ChatDep = Annotated[ChatServices, Depends(get_chat)]
LocaleDep = Annotated[str, Depends(get_locale)]
CurrentUser = Annotated[dict[str, Any], Depends(get_current_user)]
AdminAuth = Annotated[AuthContext, Depends(get_admin)]
OptionalUser = Annotated[dict[str, Any] | None, Depends(get_optional_user)]

