"""Browser protections on every response: CSP, Permissions-Policy, HSTS over https, and the rest.

The Content-Security-Policy allows scripts and styles only from our own origin (no inline code,
no eval: the pages' behaviour lives in backend/static/, htmx runs with `allowEval: false`), images
also from data:/blob: (previews of uploads), and nothing may frame the app. A route may set its own
value of any of these headers; the middleware then leaves it alone.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# Everything a chat page never uses is off (for us and for anything that would be embedded).
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media", "geolocation",
    "gyroscope", "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
    "screen-wake-lock", "serial", "usb", "xr-spatial-tracking", "interest-cohort",
))
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """The headers above on every response, unless a route set its own value; HSTS when the app
    is served over https (KOVR_PUBLIC_URL), so browsers never try plain http again."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int | None = None) -> None:
        self.app = app
        self.headers = list(_SECURITY_HEADERS)
        if hsts_max_age_s:
            self.headers.append((b"strict-transport-security", f"max-age={hsts_max_age_s}".encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
