"""Our own static files (backend/static) and the pinned npm packages (node_modules), same origin.

htmx and Swagger UI come from `npm ci` (package.json / package-lock.json at the repo root); nothing
is loaded from a CDN. A missing node_modules gives a 404 with a hint in the log, not a broken start-up.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, PlainTextResponse, Response

from backend.web.templating import REPO_ROOT

log = logging.getLogger("kovr.pages")
router = APIRouter(include_in_schema=False)

STATIC_DIR = REPO_ROOT / "backend" / "static"
_NPM = REPO_ROOT / "node_modules"
VENDOR = {
    "htmx.min.js": _NPM / "htmx.org" / "dist" / "htmx.min.js",
    # Swagger UI for /docs (backend/api/routes/api_docs.py).
    "swagger-ui-bundle.js": _NPM / "swagger-ui-dist" / "swagger-ui-bundle.js",
    "swagger-ui.css": _NPM / "swagger-ui-dist" / "swagger-ui.css",
    "swagger-favicon-32x32.png": _NPM / "swagger-ui-dist" / "favicon-32x32.png",
    "oauth2-redirect.js": _NPM / "swagger-ui-dist" / "oauth2-redirect.js",
}
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
          ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}
_CACHE = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}


def _file(path: Path) -> Response:
    if not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"), headers=_CACHE)


@router.get("/static/vendor/{name}")
async def vendor(name: str) -> Response:
    path = VENDOR.get(name)
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    if not path.is_file():
        log.error("%s is missing: run `npm ci` in %s (scripts/bootstrap.sh does)", path, REPO_ROOT)
    return _file(path)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    # One flat folder: a name with a slash or dot-dot never leaves it.
    if "/" in name or "\\" in name or name.startswith("."):
        return PlainTextResponse("not found", status_code=404)
    return _file(STATIC_DIR / name)
