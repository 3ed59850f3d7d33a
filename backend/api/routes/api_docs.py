"""/docs: Swagger UI for the API. Its script and styles come from npm's swagger-ui-dist, served from
our own origin like htmx (backend/web/static_files.py), not from the CDN FastAPI defaults to.
The page has no inline script (the Content-Security-Policy allows none): its start-up is
backend/static/swagger-init.js, which reads the schema and redirect addresses from data attributes.
ReDoc has no such package here, so /redoc is off."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    title = escape(f"{request.app.title} API")
    openapi_url = escape(f"{root}{request.app.openapi_url}")
    redirect = escape(f"{root}{OAUTH2_REDIRECT}")
    return HTMLResponse(f"""<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{root}/static/vendor/swagger-ui.css">
<link rel="icon" href="{root}/static/vendor/swagger-favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}" data-oauth2-redirect="{redirect}"></div>
<script src="{root}/static/vendor/swagger-ui-bundle.js"></script>
<script src="{root}/static/swagger-init.js"></script>
</body>
</html>
""")


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(f"""<!doctype html>
<html lang="en-US"><body><script src="{root}/static/vendor/oauth2-redirect.js"></script></body></html>
""")
