"""Pages: the public share page (`/s/{id}`, no account), its images, and the owner's share
buttons (create from the chat header, revoke from the header's panel or from the settings page).

The public page is read-only: no forms, no htmx, no scripts, no CSRF token in it, and nothing of
the owner but the conversation as shared (not the email, not even the display name).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from backend.core.errors import AppError
from backend.db.models import ShareDoc
from backend.http.deps import DbDep, OptionalUser, SettingsDep, public_base_url
from backend.schemas.shares import SharePublic
from backend.services import shares as shares_service
from backend.web.common import is_htmx, to_login
from backend.web.templating import render

router = APIRouter(include_in_schema=False)

# Search engines must not index shared conversations; links out of the page must not carry the
# share id in a Referer; a revoked link must not live on in a cache.
PUBLIC_HEADERS = {"X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer",
                  "Cache-Control": "private, no-store"}


@router.get("/s/{share_id}")
async def shared_page(share_id: str, request: Request, db: DbDep) -> Response:
    try:
        share = await shares_service.public_share(db, share_id=share_id)
    except AppError:
        response = render(request, "share.html", 404, share=None)
    else:
        response = render(request, "share.html", share=_share_view(share))
    response.headers.update(PUBLIC_HEADERS)
    return response


def _share_view(share: ShareDoc) -> dict[str, object]:
    return {"id": share["_id"], "title": share["title"], "created_at": share["created_at"],
            "messages": [{"role": m["role"], "content": m["content"],
                          "image_ids": [str(i) for i in m["image_ids"]]} for m in share["messages"]]}


@router.get("/s/{share_id}/images/{image_id}")
async def shared_image(share_id: str, image_id: str, db: DbDep) -> Response:
    doc = await shares_service.shared_image(db, share_id=share_id, image_id=image_id)
    return Response(bytes(doc["data"]), media_type=doc["content_type"],
                    headers={**PUBLIC_HEADERS, "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"})


@router.post("/c/{conversation_id}/share")
async def create_share(conversation_id: str, request: Request, db: DbDep, settings: SettingsDep,
                       user: OptionalUser) -> Response:
    """The chat header's 공유 button: a new link, shown with copy and revoke."""
    if user is None:
        return to_login(request)
    share = await shares_service.create_share(db, user_id=user["_id"], conversation_id=conversation_id)
    return render(request, "partials/share_panel.html",
                  share=SharePublic.from_doc(share, base_url=public_base_url(request, settings)))


@router.post("/shares/{share_id}/revoke")
async def revoke_share(share_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    with contextlib.suppress(AppError):  # already revoked (another tab): either way it is gone
        await shares_service.revoke_share(db, user_id=user["_id"], share_id=share_id)
    if is_htmx(request):
        return render(request, "partials/share_panel.html", share=None, revoked=True)
    return RedirectResponse("/settings", status_code=303)
