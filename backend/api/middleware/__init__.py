"""Pure ASGI middleware (not BaseHTTPMiddleware), so streamed responses (SSE) pass through unbuffered."""

from backend.api.middleware.body_limit import BodyLimitMiddleware
from backend.api.middleware.browser_session import BrowserSessionMiddleware
from backend.api.middleware.request_log import RequestLogMiddleware
from backend.api.middleware.security_headers import SecurityHeadersMiddleware

__all__ = [
    "BodyLimitMiddleware",
    "BrowserSessionMiddleware",
    "RequestLogMiddleware",
    "SecurityHeadersMiddleware",
]
