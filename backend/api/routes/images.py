"""Image upload (multipart `file`) and download, owner only."""

from __future__ import annotations

from fastapi import APIRouter, Response, UploadFile

from backend.chat.schemas import ImagePublic
from backend.http.deps import CurrentUser, DbDep, SettingsDep
from backend.schemas.common import error_responses
from backend.services import images as images_service
from backend.services import ratelimit

router = APIRouter(prefix="/images", tags=["images"])


@router.post("", status_code=201, responses=error_responses(401, 413, 415, 422, 429))
async def upload_image(file: UploadFile, user: CurrentUser, db: DbDep, settings: SettingsDep) -> ImagePublic:
    """Rate limited per user (`upload_rate_limit` per `upload_rate_window_s`: 429), within the
    user's storage quota (`image_quota_bytes`: 413 quota_exceeded); an image not sent in a message
    within `unattached_image_retention_s` is deleted."""
    await ratelimit.check_upload_allowed(db=db, settings=settings, user_id=str(user["_id"]))
    # Read one byte past the limit: enough to know it is too big without holding a huge upload.
    data = await file.read(settings.max_image_bytes + 1)
    doc = await images_service.save_image(db=db, user_id=user["_id"], data=data,
                                          max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels,
                                          quota_bytes=settings.image_quota_bytes,
                                          retention_s=settings.unattached_image_retention_s)
    return ImagePublic(id=str(doc["_id"]), content_type=doc["content_type"], size=doc["size"],
                       width=doc["width"], height=doc["height"])


@router.get("/{image_id}", responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
                                      **error_responses(401, 404)})
async def download_image(image_id: str, user: CurrentUser, db: DbDep) -> Response:
    doc = await images_service.get_image(db=db, user_id=user["_id"], image_id=image_id)
    return Response(
        bytes(doc["data"]), media_type=doc["content_type"],
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff",
                 "Content-Disposition": "inline"},
    )
