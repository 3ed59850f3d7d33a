"""Pure ASGI middleware (not BaseHTTPMiddleware), so streamed responses (SSE) pass through unbuffered."""

from backend.http.middleware.body_limit import BodyLimitMiddleware
from backend.http.middleware.browser_session import BrowserSessionMiddleware
from backend.http.middleware.request_log import RequestLogMiddleware
from backend.http.middleware.security_headers import SecurityHeadersMiddleware

__all__ = [
    "BodyLimitMiddleware",
    "BrowserSessionMiddleware",
    "RequestLogMiddleware",
    "SecurityHeadersMiddleware",
]
