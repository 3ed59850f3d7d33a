"""Opening and closing the chat part of a worker (called by the app's lifespan).

A worker has an id of its own (host, pid, random): the answers it generates carry it with a lease,
so other workers can follow them, stop them, and settle them if this worker dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from backend.chat.follow import Follower
from backend.chat.jobs import JobRunner, JobTiming
from backend.chat.model_client import ModelClient
from backend.core.errors import AppError
from backend.db.client import Db
from backend.services.chat import ChatServices
from kovr.settings import Settings

log = logging.getLogger("kovr.chat")


def model_server_url(settings: Settings) -> str:
    # `kovr serve` fills model_server_url once it has started model_server; the fallback is the
    # model server's own default address, for an app started by hand next to `kovr model-server`.
    return settings.model_server_url or f"http://{settings.model_server_host}:{settings.model_server_port}"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def open_chat(settings: Settings, db: Db) -> ChatServices:
    model = ModelClient(model_server_url(settings), timeout_s=settings.model_server_timeout_s,
                        stall_timeout_s=settings.chat_stall_timeout_s,
                        token=settings.model_server_token.get_secret_value() if settings.model_server_token else None)
    runner = JobRunner(db=db, model=model, worker_id=new_worker_id(),
                       timing=JobTiming(save_interval_s=settings.chat_save_interval_s, lease_s=settings.chat_lease_s,
                                        saves_per_s=settings.chat_saves_per_s))
    follower = Follower(db=db, runner=runner, recheck_s=settings.chat_follow_recheck_s,
                        poll_s=settings.chat_follow_poll_s)
    await follower.start()
    await runner.sweep()  # answers of a worker that died before this one started
    runner.start_sweeping()
    log.info("chat: worker %s, model server at %s, following other workers by %s", runner.worker_id,
             model.base_url, follower.mode)
    return ChatServices(settings=settings, model=model, runner=runner, follower=follower,
                        warmup=asyncio.create_task(_warm_up(model)))


async def _warm_up(model: ModelClient) -> None:
    """Learn the model's limits and demo flag early (pages show the badge); never block start-up."""
    try:
        info = await model.info()
        log.info("chat: model %s, %d input tokens%s", info.model_id, info.max_input_tokens,
                 " (demo)" if info.is_demo else "")
    except AppError as exc:
        log.warning("chat: model server not answering yet (%s); will retry on the first message", exc.code)


def begin_shutdown(chat: ChatServices) -> None:
    """SIGTERM: every open stream ends with a terminal event before the server drains: this
    worker's own answers end as `interrupted` (text kept), streams that follow another worker's
    answer end with `server_restarting` (the answer goes on there; a reload re-attaches)."""
    chat.runner.interrupt_all()
    chat.follower.end_streams()


async def close_chat(chat: ChatServices) -> None:
    if chat.warmup is not None:
        chat.warmup.cancel()
    await chat.runner.shutdown()
    await chat.follower.close()
    await chat.model.aclose()
