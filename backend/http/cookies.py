"""Browser-session cookies: access JWT and refresh token (HttpOnly), CSRF token (readable by JS).

All SameSite=Lax, Secure when the app is served over https (settings.secure_cookies).
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.responses import Response

from backend.services.auth import SessionTokens
from kovr.settings import Settings

ACCESS_COOKIE = "kovr_access"
REFRESH_COOKIE = "kovr_refresh"
CSRF_COOKIE = "kovr_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"


def cookie_header(
    name: str, value: str, *, settings: Settings, max_age: int | None, http_only: bool = True
) -> str:
    """One Set-Cookie value (used by the middleware, which writes raw headers)."""
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = "/"
    morsel["samesite"] = "Lax"
    if max_age is not None:
        morsel["max-age"] = max_age
    if http_only:
        morsel["httponly"] = True
    if settings.secure_cookies:
        morsel["secure"] = True
    return morsel.OutputString()


def session_cookie_headers(tokens: SessionTokens, settings: Settings) -> list[str]:
    headers = [
        cookie_header(ACCESS_COOKIE, tokens.access_token, settings=settings, max_age=tokens.expires_in)
    ]
    if tokens.refresh_token is not None:
        headers.append(
            cookie_header(
                REFRESH_COOKIE,
                tokens.refresh_token,
                settings=settings,
                max_age=settings.refresh_token_days * 86400,
            )
        )
    return headers


def clear_cookie_headers(settings: Settings) -> list[str]:
    return [cookie_header(n, "", settings=settings, max_age=0) for n in (ACCESS_COOKIE, REFRESH_COOKIE)]


def set_session_cookies(response: Response, tokens: SessionTokens, settings: Settings) -> None:
    for header in session_cookie_headers(tokens, settings):
        response.headers.append("set-cookie", header)


def clear_session_cookies(response: Response, settings: Settings) -> None:
    for header in clear_cookie_headers(settings):
        response.headers.append("set-cookie", header)
