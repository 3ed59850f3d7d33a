"""Start-up and shut-down hooks called by the app's lifespan (backend/app.py).

Puts :class:`ChatServices` on ``app.state.chat`` (model client + generation registry) and also
the model client on ``app.state.model``. On shut-down every running answer is stopped and saved.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from backend.chat.errors import ChatError
from backend.chat.generation import GenerationRegistry
from backend.chat.model_client import ModelClient
from backend.chat.service import ChatServices
from kovr.settings import Settings

log = logging.getLogger("kovr.chat")


def model_server_url(settings: Settings) -> str:
    # `kovr serve` fills model_server_url once it has started model_server; the fallback is the
    # model server's own default address, for an app started by hand next to `kovr model-server`.
    return settings.model_server_url or f"http://{settings.model_server_host}:{settings.model_server_port}"


async def startup(app: FastAPI, settings: Settings) -> None:
    model = ModelClient(
        model_server_url(settings), timeout_s=settings.model_server_timeout_s,
        stall_timeout_s=settings.chat_stall_timeout_s,
    )
    app.state.model = model
    app.state.chat = ChatServices(settings=settings, model=model, registry=GenerationRegistry())
    # With a model server configured (`kovr serve` sets it once it has started one), /readyz says
    # "ready" only while it answers /health; `kovr serve --no-model` runs without that check.
    checks = getattr(app.state, "readiness_checks", None)
    if settings.model_server_url is not None and isinstance(checks, dict):
        checks["model"] = model.healthy
    log.info("chat: model server at %s", model.base_url)
    # Learn the model's limits and demo flag early (pages show the badge); never block start-up.
    app.state.chat_warmup = asyncio.create_task(_warm_up(model))


async def _warm_up(model: ModelClient) -> None:
    try:
        info = await model.info()
        log.info("chat: model %s, %d input tokens%s", info.model_id, info.max_input_tokens,
                 " (demo)" if info.is_demo else "")
    except ChatError as exc:
        log.warning("chat: model server not answering yet (%s); will retry on the first message", exc.code)


async def shutdown(app: FastAPI) -> None:
    chat: ChatServices | None = getattr(app.state, "chat", None)
    if chat is None:
        return
    app.state.chat_warmup.cancel()
    await chat.registry.shutdown()
    await chat.model.aclose()
