"""One error type for the whole backend, one table from its codes to HTTP statuses, one handler.

Services, repositories and dependencies raise :class:`AppError` with a stable snake_case code;
the handler installed once by :func:`install_error_handlers` turns it into
`{"error": {"code", "message"}}` for the API, or into a toast text for an htmx page request, in
the caller's language (`backend.core.i18n`). SSE error events carry the same code and text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from backend.core.i18n import message_for, request_locale

log = logging.getLogger("kovr.errors")

# Every code's HTTP status; a code missing here is a 400.
STATUS: dict[str, int] = {
    "bad_request": 400,
    "wrong_password": 400,
    "validation_error": 422,
    "invalid_text": 422,
    "quota_exceeded": 413,  # image storage (413); the daily chat quota is the text below (429)
    "daily_quota_exceeded": 429,
    "invalid_cursor": 422,
    "invalid_event_id": 422,
    "invalid_parameters": 422,
    "empty_message": 422,
    "message_too_long": 422,
    "too_many_images": 422,
    "image_invalid": 422,
    "image_url_not_allowed": 422,
    "images_not_supported": 422,
    "model_rejected": 422,
    "prompt_too_long": 422,
    "not_authenticated": 401,
    "invalid_token": 401,
    "invalid_credentials": 401,
    "invalid_refresh_token": 401,
    "refresh_token_reused": 401,
    "forbidden": 403,
    "csrf_failed": 403,
    "account_disabled": 403,
    "not_found": 404,
    "conversation_not_found": 404,
    "message_not_found": 404,
    "image_not_found": 404,
    "token_not_found": 404,
    "share_not_found": 404,
    "user_not_found": 404,
    "method_not_allowed": 405,
    "email_taken": 409,
    "generation_in_progress": 409,
    "not_regenerable": 409,
    "not_editable": 409,
    "not_continuable": 409,
    "message_streaming": 409,
    "not_streaming": 409,
    "cannot_disable_self": 409,
    "payload_too_large": 413,
    "image_too_large": 413,
    "share_too_large": 413,
    "image_too_many_pixels": 413,
    "image_unsupported": 415,
    "rate_limited": 429,
    "chat_rate_limited": 429,
    "too_many_requests": 429,
    "internal_error": 500,
    "model_error": 502,
    "service_unavailable": 503,
    "model_unavailable": 503,
    "model_overloaded": 503,
    "interrupted": 503,
    "server_restarting": 503,
    "model_timeout": 504,
}
_BY_STATUS = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 422: "validation_error",
              429: "too_many_requests", 503: "service_unavailable"}


class AppError(Exception):
    """A failure the caller should see: ``code`` is stable, its text comes from the catalogue.

    ``detail`` is for logs only (it may hold upstream text); it is never shown.
    """

    def __init__(
        self, code: str, detail: str | None = None, *, retry_after_s: int | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
        text: str | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.code = code
        # The catalogue key of the status and message when one public code has two meanings
        # (`quota_exceeded`: image storage 413, daily chat quota 429); default: the code itself.
        self.text = text or code
        self.params = dict(params or {})  # filled into the catalogue text ({used}, ...)
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.headers = dict(headers or {})

    @property
    def status_code(self) -> int:
        return STATUS.get(self.text, 400)

    def message(self, locale: str = "ko") -> str:
        text = message_for(self.text, locale)
        return text.format(**self.params) if self.params else text

    def payload(self, locale: str = "ko") -> dict[str, str]:
        return {"code": self.code, "message": self.message(locale)}

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        if self.status_code == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return headers


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _is_page_call(request: Request) -> bool:
    """An htmx call from a page: it shows the text in a toast, not JSON."""
    path = request.url.path
    return request.headers.get("hx-request") == "true" and not path.startswith(("/api/", "/v1/"))


def error_response(request: Request, code: str, status: int, headers: Mapping[str, str] | None = None,
                   details: list[dict[str, Any]] | None = None, message: str | None = None) -> Response:
    text = message or message_for(code, request_locale(request))
    if _is_page_call(request):
        return PlainTextResponse(text, status_code=status, headers=dict(headers or {}))
    return JSONResponse(error_body(code, text, details), status_code=status, headers=dict(headers or {}))


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.status_code >= 500 and exc.detail:
        log.warning("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.detail)
    return error_response(request, exc.code, exc.status_code, exc.response_headers(),
                          message=exc.message(request_locale(request)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _BY_STATUS.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(request, code, exc.status_code, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path (Starlette names only the first route's, so
    GET /x/{id} hid PATCH and DELETE /x/{id})."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")) or "body"


def openai_error(message: str, code: str, status: int) -> dict[str, Any]:
    """OpenAI's error shape, for /v1 (its clients read `type`)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    elif status == 429:
        # OpenAI's own word for a spent quota, so its clients tell it from a short-term rate limit.
        kind = "insufficient_quota" if code == "quota_exceeded" else "rate_limit_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Only field names and pydantic's error type: never echo the submitted values (passwords).
    details = [{"field": _field(tuple(e.get("loc", ()))), "type": e.get("type", "")} for e in exc.errors()]
    # Text that is not Unicode (core.text.valid_text) has its own code, whatever else is wrong.
    code = "invalid_text" if any(d["type"] == "invalid_text" for d in details) else "validation_error"
    message = message_for(code, request_locale(request))
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    if fields:
        message = f"{message} ({fields})"
    if request.url.path.startswith("/v1/"):
        error = openai_error(message, code, 422)
        error["error"]["param"] = details[0]["field"] if details else None
        return JSONResponse(error, status_code=422)
    return error_response(request, code, 422, details=details, message=message)


async def _bare_text_error(request: Request, exc: Exception) -> Response:
    """core.text.valid_text called outside a pydantic model (a form value checked by hand)."""
    assert isinstance(exc, PydanticCustomError)
    if exc.type == "invalid_text":
        return error_response(request, "invalid_text", 422)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, "internal_error", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PydanticCustomError, _bare_text_error)
    app.add_exception_handler(Exception, _unexpected)
