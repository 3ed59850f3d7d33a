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
        unregister = on_server_exit(lambda: loop.call_soon_threadsafe(begin_shutdown, chat))
        try:
            yield
        finally:
            unregister()
            await close_chat(chat)
    finally:
        app.state.db = None
        await client.close()


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
    # Added innermost first: log → security headers → body limit → browser session → routes.
    app.add_middleware(BrowserSessionMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_image_bytes + 1024 * 1024)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestLogMiddleware)
    return app
