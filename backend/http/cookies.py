"""Browser-session cookies: access JWT and refresh token (HttpOnly), a session-binding id for
browsers not signed in (HttpOnly), and the CSRF token (readable; pages also render it).

All SameSite=Lax. Served over https (`settings.secure_cookies`: on when KOVR_PUBLIC_URL is https,
or KOVR_COOKIE_SECURE) every cookie is `Secure` and named with the `__Host-` prefix, which a
browser accepts only from this exact host, over https, with Path=/ and no Domain: a sibling
subdomain cannot plant ("toss") one.

The CSRF token is never trusted from a cookie: it is an HMAC, under the app's secret, of the
sign-in (refresh-token family) or, before sign-in, of the browser's binding id
(:func:`csrf_token_for`). The readable cookie only hands the value to scripts and tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from backend.core.secrets import jwt_key
from backend.services.auth import SessionTokens
from kovr.settings import Settings

ACCESS_COOKIE = "kovr_access"
REFRESH_COOKIE = "kovr_refresh"
CSRF_COOKIE = "kovr_csrf"
BINDING_COOKIE = "kovr_sid"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"


def name(base: str, settings: Settings) -> str:
    """The cookie's name as sent: `__Host-<base>` when cookies are Secure."""
    return f"__Host-{base}" if settings.secure_cookies else base


def read(conn: HTTPConnection, base: str, settings: Settings) -> str | None:
    return conn.cookies.get(name(base, settings))


def csrf_token_for(settings: Settings, binding: str) -> str:
    """The CSRF token of a sign-in ("fam:<family id>") or of a browser before sign-in ("sid:<id>")."""
    key = hashlib.sha256(b"kovr-csrf\0" + jwt_key(settings).encode()).digest()
    digest = hmac.new(key, binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def cookie_header(
    base: str, value: str, *, settings: Settings, max_age: int | None, http_only: bool = True
) -> str:
    """One Set-Cookie value (used by the middleware, which writes raw headers)."""
    jar: SimpleCookie = SimpleCookie()
    cookie_name = name(base, settings)
    jar[cookie_name] = value
    morsel = jar[cookie_name]
    morsel["path"] = "/"
    morsel["samesite"] = "Lax"
    if max_age is not None:
        morsel["max-age"] = max_age
    if http_only:
        morsel["httponly"] = True
    if settings.secure_cookies:
        morsel["secure"] = True
    return morsel.OutputString()


def csrf_cookie_header(settings: Settings, token: str) -> str:
    return cookie_header(CSRF_COOKIE, token, settings=settings, max_age=365 * 86400, http_only=False)


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
    # A new sign-in has a new CSRF token (the one used before it no longer counts).
    headers.append(csrf_cookie_header(settings, csrf_token_for(settings, f"fam:{tokens.family_id}")))
    return headers


def clear_cookie_headers(settings: Settings) -> list[str]:
    return [cookie_header(n, "", settings=settings, max_age=0)
            for n in (ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE)]


def set_session_cookies(response: Response, tokens: SessionTokens, settings: Settings) -> None:
    for header in session_cookie_headers(tokens, settings):
        response.headers.append("set-cookie", header)


def clear_session_cookies(response: Response, settings: Settings) -> None:
    for header in clear_cookie_headers(settings):
        response.headers.append("set-cookie", header)


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower case, default ports dropped; "" if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(conn: HTTPConnection, settings: Settings) -> set[str]:
    """This site's origins: KOVR_PUBLIC_URL's and KOVR_ALLOWED_ORIGINS, else the request's own."""
    origins = {origin_of(o) for o in settings.allowed_origin_list()}
    if settings.public_url:
        origins.add(origin_of(settings.public_url))
    if not settings.public_url:
        own: Any = conn.url
        origins.add(origin_of(f"{own.scheme}://{conn.headers.get('host', own.netloc)}/"))
    return {o for o in origins if o}
