"""Liveness and readiness, without auth. Other parts add readiness checks to app.state.readiness_checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.core.aio import within
from backend.core.errors import error_body
from backend.core.i18n import message_for, request_locale
from backend.db.client import ping

router = APIRouter(tags=["health"])

ReadinessCheck = Callable[[], Awaitable[bool]]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _run_check(check: ReadinessCheck, timeout_s: float = 3.0) -> bool:
    try:
        return bool(await within(check(), timeout_s))
    except Exception:
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, ReadinessCheck] = {"database": lambda: ping(request.app.state.db)}
    checks.update(getattr(request.app.state, "readiness_checks", {}))
    names = list(checks)
    results = dict(zip(names, await asyncio.gather(*(_run_check(checks[n]) for n in names)), strict=True))
    if all(results.values()):
        return JSONResponse({"status": "ready", "checks": results})
    body = error_body("not_ready", message_for("service_unavailable", request_locale(request)))
    return JSONResponse({**body, "status": "not_ready", "checks": results}, status_code=503)
