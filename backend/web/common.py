"""Shared bits of the page routes: who is signed in, redirects, safe `next` targets."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from backend.core.i18n import request_locale


def locale(request: Request) -> str:
    return request_locale(request)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def to_login(request: Request) -> Response:
    """Not signed in: a full page goes to /login; an htmx call is told to go there."""
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def safe_next(target: str | None, default: str = "/chat") -> str:
    # Only same-site paths: "//evil.example" and "https://..." would leave the site.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def user_view(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(user["_id"]), "email": user["email"], "display_name": user["display_name"],
            "answer_style": user.get("answer_style", "balanced"),
            "training_consent": bool(user.get("training_consent", False))}
