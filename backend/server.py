"""How `kovr serve` runs the app under uvicorn; the tests start their servers with the same config."""

from __future__ import annotations

from typing import Any

import uvicorn

from kovr.settings import Settings


def server_config(app: Any, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """Our logging instead of uvicorn's (its access log lacks the request ids); proxy headers only
    from ``settings.forwarded_allow_ips``, never from uvicorn's own environment variable."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
