"""One error shape for the whole API: {"error": {"code": "<snake_case>", "message": "<text>"}}.

Routes and deps raise :class:`ApiError` (an HTTPException with a stable code); the handlers in
:func:`install_error_handlers` turn it, validation errors, plain HTTP errors and anything
unexpected into that shape, in Korean or English by Accept-Language. No stack trace leaks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.messages import locale_from_header, message_for
from backend.services.errors import RateLimited, ServiceError

log = logging.getLogger("kovr.errors")

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error with a stable code; the message comes from the catalogue unless given."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message or code, headers=dict(headers or {}))
        self.code = code
        self.message = message


def request_locale(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    default = settings.default_locale if settings is not None else "ko"
    return locale_from_header(request.headers.get("accept-language"), default)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        code, message = exc.code, exc.message or message_for(exc.code, request_locale(request))
    else:
        code = _STATUS_CODES.get(
            exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error"
        )
        message = message_for(code, request_locale(request))
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only field names and pydantic's error type: never echo the submitted values (passwords).
    details = [{"field": _field(tuple(e.get("loc", ()))), "type": e.get("type", "")} for e in exc.errors()]
    message = message_for("validation_error", request_locale(request))
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    if fields:
        message = f"{message} ({fields})"
    return JSONResponse(error_body("validation_error", message, details), status_code=422)


# Domain errors raised by the services, by the status they mean over HTTP.
SERVICE_STATUS: dict[str, int] = {
    "invalid_credentials": 401,
    "account_disabled": 403,
    "email_taken": 409,
    "wrong_password": 400,
    "invalid_refresh_token": 401,
    "refresh_token_reused": 401,
    "invalid_token": 401,
    "rate_limited": 429,
}


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else {}
    if exc.code in ("invalid_token",):
        headers["WWW-Authenticate"] = "Bearer"
    status = SERVICE_STATUS.get(exc.code, 400)
    body = error_body(exc.code, message_for(exc.code, request_locale(request)))
    return JSONResponse(body, status_code=status, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body("internal_error", message_for("internal_error", request_locale(request))), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(Exception, _unexpected)
