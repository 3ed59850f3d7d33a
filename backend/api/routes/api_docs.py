"""/docs: Swagger UI for the API. Its script and styles come from npm's swagger-ui-dist, served from
our own origin like htmx (backend/web/static_files.py), not from the CDN FastAPI defaults to.
ReDoc has no such package here, so /redoc is off."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_js_url=f"{root}/static/vendor/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/vendor/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/vendor/swagger-favicon-32x32.png",
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()
