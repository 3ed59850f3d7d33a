"""Every router of the app. To add yours, import it and append one line to ROUTERS.

Each entry is (router, prefix): API routers use API_PREFIX ("/api/v1"); the OpenAI-compatible API
uses its own ("/v1"). Routers are included in this order; the pages (`backend.web`) come after.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.routes import (
    admin,
    api_docs,
    auth,
    chat,
    conversations,
    feedback_export,
    health,
    images,
    messages,
    openai_compat,
    shares,
    tokens,
    users,
)

API_PREFIX = "/api/v1"

ROUTERS: list[tuple[APIRouter, str]] = [
    (health.router, ""),
    (auth.router, API_PREFIX),
    (users.router, API_PREFIX),
    (tokens.router, API_PREFIX),
    (conversations.router, API_PREFIX),
    (chat.router, API_PREFIX),
    (messages.router, API_PREFIX),
    (images.router, API_PREFIX),
    (admin.router, API_PREFIX),
    (shares.router, API_PREFIX),
    (feedback_export.router, API_PREFIX),
    (openai_compat.router, ""),
    (api_docs.router, ""),
]
