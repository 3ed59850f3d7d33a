"""The FastAPI application: `create_app(settings)`, with both front doors: the API (`backend.api`)
and the pages (`backend.web`), each a thin layer over `backend.services`.

Lifespan: open the AsyncMongoClient (app.state.db), apply pending migrations, finish interrupted
account deletions, then open the chat part (app.state.chat: model client, this worker's jobs, the
follower of other workers' answers) and, on the way out, close it before the client closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pymongo.errors import PyMongoError

from backend import web
from backend.api.routes import ROUTERS
from backend.core.errors import install_error_handlers
from backend.core.secrets import ensure_jwt_secret
from backend.db.client import Db, open_client
from backend.db.migrate import apply_migrations
from backend.http.middleware import (
    BodyLimitMiddleware,
    BrowserSessionMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
)
from backend.http.shutdown import on_server_exit
from backend.services.auth import finish_deletions
from backend.services.chat_runtime import begin_shutdown, close_chat, open_chat
from kovr import __version__
from kovr.settings import Settings

log = logging.getLogger("kovr.app")


async def _migrate(db: Db) -> None:
    try:
        report = await apply_migrations(db)
    except PyMongoError as exc:
        # One clear line instead of a driver traceback; the URI is not printed (it may hold a password).
        raise RuntimeError(
            f"database not reachable (KOVR_MONGODB_URI / embedded): {type(exc).__name__}"
        ) from None
    if report.changed:
        log.warning("edited migrations already applied: %s", ", ".join(report.changed))


async def _finish_deletions(db: Db) -> None:
    """Account deletions cut short by a crash or restart are finished before anything else runs."""
    try:
        finished = await finish_deletions(db=db)
    except PyMongoError as exc:  # the app still starts; the next start tries again
        log.error("could not finish interrupted account deletions: %s", type(exc).__name__)
        return
    if finished:
        log.warning("finished %d interrupted account deletion(s)", finished)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    assert settings.mongodb_uri is not None
    client = open_client(settings.mongodb_uri.get_secret_value(), retry_writes=settings.mongodb_retry_writes)
    try:
        app.state.db = client[settings.mongodb_db]
        await _migrate(app.state.db)
        await _finish_deletions(app.state.db)
        app.state.chat = chat = await open_chat(settings, app.state.db)
        app.state.model = chat.model
        # With a model server configured (`kovr serve` sets it once it has started one), /readyz
        # says "ready" only while it answers /health; `kovr serve --no-model` runs without that.
        if settings.model_server_url is not None:
            app.state.readiness_checks["model"] = chat.model.healthy
        loop = asyncio.get_running_loop()

        def on_exit() -> None:  # from the signal handler: hand over to the event loop
            loop.call_soon_threadsafe(begin_shutdown, chat)

        unregister = on_server_exit(on_exit)
        try:
            yield
        finally:
            unregister()
            await close_chat(chat)
    finally:
        app.state.db = None
        await client.close()


def _openapi_with_settings(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document with this deployment's own limits (they are settings, not constants),
    so it says exactly what the server accepts."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        models = schema.get("components", {}).get("schemas", {})
        limits = {
            ("MessageCreate", "content", "maxLength"): settings.max_message_chars,
            ("MessageCreate", "image_ids", "maxItems"): settings.chat_max_images_per_message,
            ("ConversationCreate", "title", "maxLength"): settings.max_title_chars,
            ("ConversationUpdate", "title", "maxLength"): settings.max_title_chars,
            ("UserCreate", "display_name", "maxLength"): settings.max_display_name_chars,
            ("UserUpdate", "display_name", "maxLength"): settings.max_display_name_chars,
            ("ChatParameters", "max_new_tokens", "maximum"): settings.max_new_tokens_limit,
            ("ChatCompletionRequest", "max_tokens", "maximum"): settings.max_new_tokens_limit,
            ("ChatCompletionRequest", "max_completion_tokens", "maximum"): settings.max_new_tokens_limit,
        }
        # Statuses any operation can give: a malformed or too large body (400, 413), invalid
        # parameters (422), as the one error shape.
        error = {"description": "error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    for code in ("400", "413", "422"):
                        responses.setdefault(code, error)
                elif operation.get("parameters"):
                    responses.setdefault("422", error)
        for (model, field, key), value in limits.items():
            prop = models.get(model, {}).get("properties", {}).get(field)
            if prop is not None:
                for target in prop.get("anyOf", [prop]):
                    if target.get("type") in ("string", "array", "integer"):
                        target[key] = min(value, target.get(key, value))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI documents replacing app.openapi this way


def create_app(settings: Settings) -> FastAPI:
    """The app for these settings; they must name a database (`kovr serve` starts the embedded one)."""
    if settings.mongodb_uri is None:
        raise RuntimeError("create_app needs settings.mongodb_uri (kovr serve starts the embedded database)")
    settings = ensure_jwt_secret(settings)
    app = FastAPI(
        title="KoVR",
        version=__version__,
        lifespan=lifespan,
        description='한국어 LLM 채팅 API (Korean LLM chat). Errors: {"error": {"code", "message"}}.',
        # /docs is our own route (backend/api/routes/api_docs.py): FastAPI's loads Swagger UI from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = None
    app.state.readiness_checks = {}
    install_error_handlers(app)
    for router, prefix in ROUTERS:
        app.include_router(router, prefix=prefix)
    app.include_router(web.router)
    _openapi_with_settings(app, settings)
    # Added innermost first: log → security headers → body limit → browser session → routes.
    app.add_middleware(BrowserSessionMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_image_bytes + 1024 * 1024)
    app.add_middleware(SecurityHeadersMiddleware,
                       hsts_max_age_s=settings.hsts_max_age_s if settings.served_over_https else None)
    app.add_middleware(RequestLogMiddleware)
    return app
