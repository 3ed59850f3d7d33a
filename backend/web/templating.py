"""Jinja2 environment for ui_templates/ and the context every page gets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from backend.chat.markdown import render_markdown
from backend.core.i18n import request_locale, translator
from backend.http.deps import csrf_token
from kovr import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "ui_templates"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["markdown"] = render_markdown
templates.env.globals["asset_version"] = __version__


def _short_time(value: dt.datetime | None, locale: str) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") + (" UTC" if locale == "en" else "")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    locale = request_locale(request)
    chat = getattr(request.app.state, "chat", None)
    info = chat.model.cached_info if chat is not None else None
    base = {
        "t": translator(locale), "locale": locale, "csrf_token": csrf_token(request),
        "is_demo": bool(info and info.is_demo), "model_id": info.model_id if info else None,
        "short_time": lambda v: _short_time(v, locale),
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
