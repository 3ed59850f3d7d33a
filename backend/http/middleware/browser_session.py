"""The browser session: a CSRF cookie for every browser, silent renewal of an expired access cookie."""

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

_CSRF_VALUE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class BrowserSessionMiddleware:
    """Gives every browser a CSRF cookie and renews an expired access cookie from the refresh cookie.

    Sets in request.state: `csrf_token` (for forms and htmx headers) and, after a renewal,
    `session_access_token` (read by the auth dependency instead of the stale cookie).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        app_state = conn.app.state
        state = scope.setdefault("state", {})
        set_cookies: list[str] = []
        csrf = conn.cookies.get(cookies.CSRF_COOKIE, "")
        program = "authorization" in conn.headers and not conn.cookies  # API clients keep no cookies
        if not _CSRF_VALUE.match(csrf) and not program:
            csrf = security.random_token(32)
            set_cookies.append(
                cookies.cookie_header(
                    cookies.CSRF_COOKIE,
                    csrf,
                    settings=app_state.settings,
                    max_age=365 * 86400,
                    http_only=False,
                )
            )
        state["csrf_token"] = csrf
        if getattr(app_state, "db", None) is not None:
            set_cookies += await self._renew(conn, state, app_state)

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and set_cookies:
                headers = list(message.get("headers", []))
                # The route's own cookies win (a logout clears what a renewal would set).
                own = {v.split(b"=", 1)[0].strip() for k, v in headers if k.lower() == b"set-cookie"}
                extra = [c.encode("latin-1") for c in set_cookies]
                headers += [(b"set-cookie", c) for c in extra if c.split(b"=", 1)[0] not in own]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    async def _renew(self, conn: HTTPConnection, state: dict[str, Any], app_state: Any) -> list[str]:
        refresh = conn.cookies.get(cookies.REFRESH_COOKIE)
        if not refresh or conn.headers.get("authorization"):
            return []
        settings = app_state.settings
        access = conn.cookies.get(cookies.ACCESS_COOKIE)
        if access and _access_valid(access, settings):
            return []
        try:
            _, tokens = await auth.rotate_refresh(
                db=app_state.db,
                settings=settings,
                refresh_token=refresh[:512],
                grace_s=settings.refresh_reuse_grace_s,
            )
        except AppError:
            return cookies.clear_cookie_headers(settings)
        state["session_access_token"] = tokens.access_token
        return cookies.session_cookie_headers(tokens, settings)


def _access_valid(token: str, settings: Any) -> bool:
    try:
        security.decode_access_token(token, secret=jwt_key(settings), algorithm=settings.jwt_algorithm)
        return True
    except security.TokenError:
        return False
