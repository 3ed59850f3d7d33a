"""The browser session: the CSRF token bound to it, silent renewal of an expired access cookie."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core import security
from backend.core.errors import AppError
from backend.core.secrets import jwt_key
from backend.http import cookies
from backend.services import auth

_BINDING_VALUE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class BrowserSessionMiddleware:
    """Works out each browser's CSRF token and renews an expired access cookie from the refresh cookie.

    The token is `cookies.csrf_token_for` of the sign-in (the access cookie's refresh-token family)
    or, for a browser not signed in, of its binding id (an HttpOnly random cookie handed out here):
    a value planted in a cookie by someone else never matches it.

    Sets in request.state: `csrf_token` (what a write must send back; forms and htmx headers render
    it) and, after a renewal, `session_access_token` (read by the auth dependency instead of the
    stale cookie).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        app_state = conn.app.state
        settings = app_state.settings
        state = scope.setdefault("state", {})
        set_cookies: list[str] = []
        program = "authorization" in conn.headers and not conn.cookies  # API clients keep no cookies
        family: str | None = None
        if not program:
            family = _family(cookies.read(conn, cookies.ACCESS_COOKIE, settings), settings)
            if family is None and getattr(app_state, "db", None) is not None:
                family, renewed = await self._renew(conn, state, app_state)
                set_cookies += renewed
        if family is not None:
            binding = f"fam:{family}"
        else:
            sid = cookies.read(conn, cookies.BINDING_COOKIE, settings) or ""
            if not _BINDING_VALUE.match(sid) and not program:
                sid = security.random_token(32)
                set_cookies.append(cookies.cookie_header(cookies.BINDING_COOKIE, sid, settings=settings,
                                                         max_age=365 * 86400))
            binding = f"sid:{sid}"
        token = "" if program else cookies.csrf_token_for(settings, binding)
        state["csrf_token"] = token
        if token and cookies.read(conn, cookies.CSRF_COOKIE, settings) != token:
            set_cookies.append(cookies.csrf_cookie_header(settings, token))

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and set_cookies:
                headers = list(message.get("headers", []))
                # The route's own cookies win (a sign-in sets its own CSRF cookie, a logout clears).
                own = {v.split(b"=", 1)[0].strip() for k, v in headers if k.lower() == b"set-cookie"}
                extra = [c.encode("latin-1") for c in set_cookies]
                headers += [(b"set-cookie", c) for c in extra if c.split(b"=", 1)[0] not in own]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    async def _renew(self, conn: HTTPConnection, state: dict[str, Any], app_state: Any) -> tuple[str | None, list[str]]:
        settings = app_state.settings
        refresh = cookies.read(conn, cookies.REFRESH_COOKIE, settings)
        if not refresh or conn.headers.get("authorization"):
            return None, []
        try:
            _, tokens = await auth.rotate_refresh(
                db=app_state.db,
                settings=settings,
                refresh_token=refresh[:512],
                grace_s=settings.refresh_reuse_grace_s,
            )
        except AppError:
            return None, cookies.clear_cookie_headers(settings)
        state["session_access_token"] = tokens.access_token
        return tokens.family_id, cookies.session_cookie_headers(tokens, settings)


def _family(token: str | None, settings: Any) -> str | None:
    """The sign-in of a valid access cookie, None if there is none (or it expired)."""
    if not token:
        return None
    try:
        claims = security.decode_access_token(token, secret=jwt_key(settings), algorithm=settings.jwt_algorithm)
    except security.TokenError:
        return None
    family = claims.get("fam")
    return family if isinstance(family, str) and family else f"user:{claims['sub']}"
