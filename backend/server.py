"""How `kovr serve` runs the app under uvicorn (one process, or N worker processes on one socket);
the tests start their servers with the same config.

Importing it installs the exit hook (`backend.http.shutdown`) that lets a SIGTERM end every open
stream with a terminal event before uvicorn drains connections.
"""

from __future__ import annotations

import signal
from typing import Any

import uvicorn
from fastapi import FastAPI

from backend.http import shutdown  # noqa: F401 - installs the exit hook in this process
from kovr.processes import die_with_parent
from kovr.settings import Settings, worker_settings


def server_config(app: Any, settings: Settings, *, port: int | None = None, **extra: Any) -> uvicorn.Config:
    """Our logging instead of uvicorn's (its access log lacks the request ids); proxy headers only
    from ``settings.forwarded_allow_ips``, never from uvicorn's own environment variable.

    The h11 protocol, because it caps a request's header block (`max_header_bytes`: larger is
    refused with 400 before the app sees it); httptools accepts headers of any size."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        lifespan="on",
        **extra,
    )


def worker_app() -> FastAPI:
    """The app of one web worker process (`kovr serve --workers N`): the parent's settings, and a
    parent-death signal so a killed `kovr serve` takes its workers with it."""
    from backend.app import create_app
    from backend.core.logging import configure_logging

    die_with_parent(signal.SIGTERM)
    settings = worker_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def run_workers(settings: Settings) -> bool:
    """N worker processes on one listening socket (uvicorn's supervisor restarts a dead one)."""
    from uvicorn.supervisors import Multiprocess

    config = server_config("backend.server:worker_app", settings, factory=True, workers=settings.workers)
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
    return True
